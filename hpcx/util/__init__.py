"""The base every stage may use: terminal-safe text, name selection with did-you-mean, files
written atomically, processes and hosts, SLURM's units. Nothing here imports another hpcx
package except :mod:`hpcx.errors`."""
