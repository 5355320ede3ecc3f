/* Compiled into every hostile test program (gcc -include): before main, the program says on
 * stderr that it started, so that the test's run helper can prove the box ran it. No header is
 * included here: the program's own feature macros must come first. */
extern long write(int fd, const void *buf, unsigned long count);

__attribute__((constructor)) static void cellbox_test_started(void)
{
    static const char line[] = "cellbox-test: started\n";
    write(2, line, sizeof line - 1);
}
