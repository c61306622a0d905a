"""Image unit tests run on files under pytest's tmp_path; nothing here needs QEMU."""
