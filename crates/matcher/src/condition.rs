//! One compiled ShenYu condition.
