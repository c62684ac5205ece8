"""The edges: the Docker engine, git, the run store on disk, the job-writable part of a run
directory, hashing, datasets, the project's files, the host. Each is a narrow set of
functions; edges import only the core and each other."""
