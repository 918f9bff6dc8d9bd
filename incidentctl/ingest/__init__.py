"""Body → raw archive row: sniffing, JSON decoding, the archive and the receiver."""
