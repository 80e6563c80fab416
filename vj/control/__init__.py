"""Control inputs: OSC, MIDI, keys and cue lists all become ``(param, value)`` events for one store."""
