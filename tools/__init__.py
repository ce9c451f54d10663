"""Project tooling that is not shipped: generators (gen_conf, derive_schemas) and the harness shared by tests and bench."""
