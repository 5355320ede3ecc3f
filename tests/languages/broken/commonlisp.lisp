(write-line "a"
