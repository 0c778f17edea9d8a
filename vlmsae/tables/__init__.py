"""Result tables over runs: the summary tables every run feeds (`summary`), the papers' tables
(`papers`), the intervention tables (`interventions`) and the synthetic-recovery table
(`recovery`)."""
