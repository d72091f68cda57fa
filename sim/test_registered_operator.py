"""An operator registered from outside the package runs through the same testbenches.

``relu`` lives only in the tests (tests/contract_op/); registered here, :func:`sim.runner.run`
passes its whole record to the simulator, whose testbench of the element kind registers it
again and checks it like any other operator, on both simulators.
"""

from __future__ import annotations

import pytest

from hwgen import registry
from sim import runner

RELU = registry.Operator(
    "relu",
    "ReluParams",
    "Relu",
    registry.Interface.ELEMENT,
    "test-only ReLU on the element stream",
    golden_module="tests.contract_op.relu",
    core_module="tests.contract_op.relu_core",
)


@pytest.fixture
def relu():
    registry.register(RELU)
    yield RELU.name
    registry.unregister(RELU.name)


@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_registered_operator_passes_its_testbench(relu, sim):
    p = registry.get(relu).params()
    summary = runner.run(relu, p, sim)
    runner.check_summary(relu, p, summary, random=2**p.in_fmt.width)
