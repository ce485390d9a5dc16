import os

from bench.service_process import cpu_spent, process_times


def test_cpu_spent_sums_the_tree_and_counts_a_process_started_in_between_from_zero():
    before = {1: ("driver", 2.0), 2: ("Segmenter", 10.0)}
    after = {1: ("driver", 2.5), 2: ("Segmenter", 14.0), 3: ("Tiler", 1.25)}
    assert cpu_spent(before, after) == 0.5 + 4.0 + 1.25


def test_process_times_reads_this_process_from_proc():
    sum(i * i for i in range(300_000))  # some CPU time of our own
    times = process_times(os.getpid())
    assert os.getpid() in times and times[os.getpid()][1] > 0
