"""Pure domain and ML logic: arrays and bytes in, arrays and values out."""
