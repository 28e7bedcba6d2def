"""Streamlit dashboard: thin pages over warehouse queries and core functions."""
