"""Pure: outcomes, evidence, states, rollups, redaction. Imports nothing else of monitor."""
