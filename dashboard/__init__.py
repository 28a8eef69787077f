"""The Streamlit dashboard (read-only over the monitor's database)."""
