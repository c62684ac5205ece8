"""`reprise bundle export|inspect|import`: a run as one self-contained, verifiable file.

Export streams `docker save` through zstd into a spool while hashing every member, then writes
the header with the full index as the file's first zstd frame: memory stays flat whatever the
image size, and the index comes first so that import can check every member before using it.

Import treats the file as hostile: every member is checked against the index as it streams,
the run is staged inside the runs directory, the image members go to `docker load` without the
archive's own tags, the loaded image is proven to be the recorded one, and only then is the run
registered (and the image tagged in reprise's own namespace). On any failure nothing is left.
"""
