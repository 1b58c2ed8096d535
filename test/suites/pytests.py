# Runs CPython's own regression tests (Debian's libpython3.11-testsuite) for
# the modules named on the command line and prints one JSON line per
# module: counts, and the ids of the tests that passed, failed or were
# skipped. Resources are all denied (support.use_resources = []), so nothing
# reaches beyond the machine (network tests are skipped), and slow "cpu"
# tests stay out.
#   python3 pytests.py test_os test_time test_multiprocessing_fork.WithProcessesTestProcess
#   python3 pytests.py 'test_signal!StressTest,ItimerTest'   (a module without those classes)
#   python3 pytests.py 'test_x!SomeTest.test_slow'            (or without that test)
import json
import os
import sys
import time
import unittest

from test import support

support.use_resources = []
# regrtest's own limit for a single test; a stuck test must not hang the suite.
# Some tests wait it out on purpose (test_signal's siginterrupt_off).
support.SHORT_TIMEOUT = 10
support.LOOPBACK_TIMEOUT = 10


class Recorder(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.passed = []
        self.slow = []

    def startTest(self, test):
        super().startTest(test)
        self.t0 = time.monotonic()

    def stopTest(self, test):
        super().stopTest(test)
        took = time.monotonic() - self.t0
        if took > 2:
            self.slow.append((test.id(), round(took, 1)))

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())


def without(suite, classes):
    kept = unittest.TestSuite()
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            kept.addTest(without(t, classes))
        elif not ({type(t).__name__, getattr(t, '_testMethodName', ''), f"{type(t).__name__}.{getattr(t, '_testMethodName', '')}"} & classes):
            kept.addTest(t)
    return kept


def main():
    for spec in sys.argv[1:]:
        name, _, excluded = spec.partition('!')
        started = time.monotonic()
        result = Recorder()
        try:
            suite = unittest.defaultTestLoader.loadTestsFromName('test.' + name)
            if excluded:
                suite = without(suite, set(excluded.split(',')))
            suite.run(result)
        except BaseException as e:  # a module that cannot even load
            result.errors.append((name, repr(e)))
        failed = sorted({t.id() if hasattr(t, 'id') else str(t) for t, _ in result.failures + result.errors + result.unexpectedSuccesses})
        out = {
            'module': spec,
            'run': result.testsRun,
            'passed': sorted(result.passed),
            'failed': failed,
            'skipped': len(result.skipped),
            'seconds': round(time.monotonic() - started, 1),
            'slow': result.slow,
        }
        if os.environ.get('PYTESTS_DETAIL'):
            out['detail'] = [(t.id() if hasattr(t, 'id') else str(t), tb[-600:]) for t, tb in result.failures + result.errors]
        sys.stdout.write('PYTESTS ' + json.dumps(out) + '\n')
        sys.stdout.flush()


main()
