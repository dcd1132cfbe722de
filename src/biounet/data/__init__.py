"""Data: reading image/label folders, normalisation, synthetic microscopy and public dataset fetching."""
