#import <objc/Object.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// One class method per mode.
@interface Modes : Object
+ (int)hello;
+ (int)echo;
+ (int)re;
+ (int)cpu;
+ (int)sleep;
+ (int)mle;
+ (int)ole;
@end

@implementation Modes
+ (int)hello { return printf("hello\n") < 0; }
+ (int)echo {
    char line[4096];
    while (fgets(line, sizeof line, stdin)) fputs(line, stdout);
    return 0;
}
+ (int)re { raise(11); return 1; }
+ (int)cpu { for (volatile long n = 0;; n++) {} }
+ (int)sleep { return (int)sleep(30); }
+ (int)mle {
    for (size_t block = 16 << 20;;) {
        unsigned char *p = calloc(1, block);
        if (p == NULL) return 4;
        for (size_t i = 0; i < block; i += 4096) p[i] = 7;
    }
}
+ (int)ole {
    char page[8192];
    memset(page, 'x', sizeof page);
    for (;;) write(1, page, sizeof page);
}
@end

int main(void) {
    char mode[32];
    if (!fgets(mode, sizeof mode, stdin)) return 9;
    mode[strcspn(mode, "\n")] = 0;
    if (!strcmp(mode, "hello")) return [Modes hello];
    if (!strcmp(mode, "echo")) return [Modes echo];
    if (!strcmp(mode, "re")) return [Modes re];
    if (!strcmp(mode, "cpu")) return [Modes cpu];
    if (!strcmp(mode, "sleep")) return [Modes sleep];
    if (!strcmp(mode, "mle")) return [Modes mle];
    if (!strcmp(mode, "ole")) return [Modes ole];
    if (!strcmp(mode, "exit")) return 3;
    return 0;
}
