"""Graph layers of Bi-level Mean Field (public names are re-exported here)."""
