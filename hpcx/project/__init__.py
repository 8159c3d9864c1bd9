"""A project on disk: where its root, manifests, state file and runs folder are
(:mod:`hpcx.project.paths`), and ``hpcx init``'s templates (:mod:`hpcx.project.scaffold`)."""
