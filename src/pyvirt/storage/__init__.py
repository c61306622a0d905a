"""Storage pools and volumes: the directory-pool driver (:mod:`.driver`), volume files (:mod:`.volumes`), and
the framing of volume uploads and downloads (:mod:`.stream`)."""
