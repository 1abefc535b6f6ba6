"""Files: atomic writes and regular-file readers, checked .npz members, the
memory a request needs, the --history document."""
