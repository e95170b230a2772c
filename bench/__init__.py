"""Benchmarks (`make bench`): micro, HTTP and memory, against the floor and the seed."""
