"""qcow2: header, refcounts, L1/L2 tables and cache, image I/O, creation and internal snapshots."""
