"""Graph production only: the deploy form to ONNX (onnx_export, with our op lowerings), simplification, graph
checks, the artifact <-> ONNX Runtime twin alignment, and the precision transforms (precision/: fp16, int8 Q/DQ).
The steps that call these, in order, are deployconv.pipeline's."""
