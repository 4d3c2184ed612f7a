"""The memory zoo: memory methods behind one interface, by name.

    method = make_method("expel", MethodSetup(folder=run / "memory"))
    block = await method.read(task, MemoryEnv(chat=llms.memory))     # before the episode
    change = await method.write(episode, feedback, env)             # after it is judged
    method.at(3).items()                                            # the memory after write 3

``base``: the interface (``MemoryMethod``, ``MemoryBlock``, ``MemoryOp``, ``MemoryWrite``,
``Feedback``, ``MemoryEnv``); ``logged``: methods kept as an op log (``LoggedMethod``, ``Draft``);
``blocks``: fitting a block to its token budget; ``registry``: ``@memory_method`` and
``make_method``; one module per method (``cases``: Memento's case bank; ``expel``; ``awm``; ...).
Names load on first use.
"""

from memento_lab.exports import lazy

_EXPORTS = {
    "MemoryMethod": "memento_lab.memory.methods.base",
    "MemoryBlock": "memento_lab.memory.methods.base",
    "MemoryItem": "memento_lab.memory.methods.base",
    "MemoryOp": "memento_lab.memory.methods.base",
    "MemoryWrite": "memento_lab.memory.methods.base",
    "MemoryEnv": "memento_lab.memory.methods.base",
    "Feedback": "memento_lab.memory.methods.base",
    "LoggedMethod": "memento_lab.memory.methods.logged",
    "Draft": "memento_lab.memory.methods.logged",
    "Recall": "memento_lab.memory.methods.blocks",
    "Section": "memento_lab.memory.methods.blocks",
    "Entry": "memento_lab.memory.methods.blocks",
    "MethodSetup": "memento_lab.memory.methods.setup",
    "memory_method": "memento_lab.memory.methods.registry",
    "make_method": "memento_lab.memory.methods.registry",
    "method_names": "memento_lab.memory.methods.registry",
    "CaseMemory": "memento_lab.memory.methods.cases",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)
