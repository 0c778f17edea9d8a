"""Result tables over runs: the summary tables every run feeds (`summary`), the papers' tables
(`papers`; group-sparse Table 2 over the audio benchmark stores: `audio_benchmarks`), the
intervention tables (`interventions`) and the synthetic-recovery table
(`recovery`)."""
