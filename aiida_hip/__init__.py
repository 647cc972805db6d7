"""aiida-hip: transition-state searches with HIP (Hessian Interatomic Potentials) and AiiDA provenance."""

__version__ = "0.1.0.dev0"
