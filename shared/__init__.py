"""The core every byom service imports: settings, schemas, job store, AWS clients."""
