"""Chemistry without machine learning: units, vibrational analysis, reference levels, molecules."""
