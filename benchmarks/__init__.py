"""Speed and memory benchmarks of fgi, each against a named reference measured in the same run.

`make bench` (= `python -m benchmarks`) runs prepare, evaluate, inference and
training and writes `reports/bench.md`; `python -m benchmarks e2e` times
`make repro` and `make test` in a fresh clone; `python -m benchmarks.gpu_train`
measures training throughput on a CUDA machine. Nothing here runs inside the
test suite (docs/design.md §8).
"""
