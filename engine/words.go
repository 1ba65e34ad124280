package engine

// Words emits the words of line: the runs of bytes between ASCII white
// space (space, \t, \n, \v, \f, \r), as strings.Fields splits ASCII text.
// It allocates nothing: each word is a substring of line. Use it with
// FlatMapEmit to split lines on the hot path of a word count.
func Words(line string, emit func(string)) {
	start := -1
	for i := 0; i < len(line); i++ {
		if asciiSpace[line[i]] {
			if start >= 0 {
				emit(line[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		emit(line[start:])
	}
}

var asciiSpace = [256]bool{' ': true, '\t': true, '\n': true, '\v': true, '\f': true, '\r': true}
