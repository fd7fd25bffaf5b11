"""The book's circuits, each built by hand in the chapter that introduces it:
``one_qubit_circuit`` in chapter 3 (used again in chapters 4 to 6).
"""

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter


def one_qubit_circuit():
    """The circuit H, then RY(theta) on one qubit, and its input parameter theta."""
    theta = Parameter("θ")
    circuit = QuantumCircuit(1)
    circuit.h(0)
    circuit.ry(theta, 0)
    return circuit, theta
