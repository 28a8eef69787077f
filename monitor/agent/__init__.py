"""The long-running monitor: scheduler, probes, the one writer, the alert sender."""
