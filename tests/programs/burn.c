/* burn THREADS SECONDS: each of THREADS threads spins until it has used SECONDS of CPU
 * (measured with CLOCK_THREAD_CPUTIME_ID from the moment it starts spinning, so the main
 * thread's CPU time from before execve, which no sandbox charges, is left out). Prints the
 * sum of the threads' CPU times in seconds. A thread also stops after 60 s of wall-clock
 * time, so a sandbox bug cannot make it spin forever. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double per_thread;
static double used[64];

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *spin(void *arg) {
    long i = (long)arg;
    double wall0 = now(CLOCK_MONOTONIC);
    double cpu0 = now(CLOCK_THREAD_CPUTIME_ID);
    volatile unsigned long x = 0;
    for (;;) {
        for (int k = 0; k < 100000; k++) x += k;
        double cpu = now(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        used[i] = cpu;
        if (cpu >= per_thread || now(CLOCK_MONOTONIC) - wall0 > 60) break;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: burn THREADS SECONDS\n");
        return 2;
    }
    int n = atoi(argv[1]);
    per_thread = atof(argv[2]);
    if (n < 1 || n > 64) return 2;
    pthread_t t[64];
    for (long i = 1; i < n; i++)
        if (pthread_create(&t[i], NULL, spin, (void *)i) != 0) {
            perror("pthread_create");
            return 3;
        }
    spin((void *)0);
    for (long i = 1; i < n; i++) pthread_join(t[i], NULL);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += used[i];
    printf("%.6f\n", sum);
    return 0;
}
