"""Alert channels, one module each: how an alert is rendered and delivered."""
