#include <stdio.h>
int twice(int);
int main(void) { int x; scanf("%d", &x); printf("%d\n", twice(x)); return 0; }
