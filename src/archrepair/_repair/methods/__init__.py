"""The registered repair methods, one module each; importing this package registers them all.

Adding a method: write ``methods/<name>.py`` with a :class:`~archrepair._repair.base.Repairer`
subclass and a builder decorated with ``@register_repairer``, and import it here.
"""

from . import auto, archrepair, gradient, train_more, arachne, apricot, mode, augmix, sensei, bn_adapt  # noqa: F401, I001  (registration, in listing order)
