//! Reading `kojid.conf` exactly as kojid does, plus the adjutant's own settings.
