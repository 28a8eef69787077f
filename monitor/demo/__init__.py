"""The offline demo and test fixtures: the fake provider, the demo's story, the seed history."""
