"""The point-in-time (ASOF) join: the API and paths (``join``), input readers (``sources``), the matching kernel (``kernel``) and key encodings (``key_encoding``)."""
