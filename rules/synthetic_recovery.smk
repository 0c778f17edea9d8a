# The iso-energy recovery table on the synthetic datasets (vlmsae.tables.recovery).


rule synthetic_recovery:
    input:
        summary=TABLE_PATHS["summary"],
    output:
        csv=report(
            TABLE_PATHS["synthetic_recovery"],
            caption="../report/tables/synthetic_recovery.rst",
            category="tables",
        ),
        md="results/tables/synthetic_recovery.md",
    log:
        "logs/tables/synthetic_recovery.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        tau1=SYNTHETIC_TAU1,
    script:
        "../workflow_scripts/synthetic_recovery.py"
