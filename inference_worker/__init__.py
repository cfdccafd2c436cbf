"""The inference worker: consume, build a tensor, score with ONNX Runtime, produce."""
