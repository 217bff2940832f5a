"""The report stage: terminal tables, plots and report files."""
