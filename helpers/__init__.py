"""Shared code for the book
*Hybrid quantum-classical neural networks with PyTorch and Qiskit*.

Each module has one concern, and each is introduced in the chapter named beside it:

- ``helpers.reproducibility``: seeding (every chapter, first cell)
- ``helpers.data``: the two moons (chapter 2) and MNIST digits online or offline
  (chapter 6)
- ``helpers.models``: the hybrid MNIST network and its classical twin (chapter 6)
- ``helpers.quantum``: a Qiskit circuit as a PyTorch layer, with parameter-shift
  gradients (chapters 3-5)
- ``helpers.training``: a minibatch training loop and evaluation (chapters 1, 2 and 6)
- ``helpers.plotting``: figures the chapters share
- ``helpers.hardware``: a quantum layer transpiled for a device, and counting the jobs
  and circuits a device is sent (chapter 8)
"""
