"""The orchestration of `deployconv export` and `deployconv bundle`: one function per step, typed inputs and results.
`export.export()` reads as the recipe: resolve_request -> build_model -> reparameterize_model -> export_graphs ->
check_graphs -> parity_inputs -> apply_precision -> run_parity -> quick_bench -> engine_step -> write_export."""
