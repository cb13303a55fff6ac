//! ShenYu selector/rule selection for one plugin.
