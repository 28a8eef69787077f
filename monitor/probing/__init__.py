"""One probe: the engine (HTTP), body decoding, the generic classifier, the pipeline."""
