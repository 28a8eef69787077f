"""Alert channels: tell people when a target's confirmed state changes."""
