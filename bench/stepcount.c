/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * stepcount: exact user-space instruction counts of a running process, all
 * of its threads, by ptrace single-stepping.  These machines have no
 * hardware performance counters, and valgrind runs OpenSSL without the
 * CPU's SHA extensions; here the real CPU runs the real code, and every
 * single-step stop is one retired instruction.
 *
 *   bench/stepcount [-h] PID [LO HI]
 *
 * It attaches to every thread of PID (and to the threads those start
 * later), prints "ATTACHED <threads>" and single-steps them until SIGINT
 * or SIGTERM, then detaches: the process goes on as if nothing happened.
 * On SIGUSR1 it prints, on stdout,
 *
 *   COUNT <instructions> <own>
 *   END
 *
 * for what was retired since the last COUNT.  With LO HI (hex addresses,
 * a module's r-xp mapping in /proc/PID/maps), <own> counts the
 * instructions of calls into that range: from the first instruction in
 * the range reached from outside it until that call returns (the stack
 * pointer rises above where it was at entry), so that what the module
 * calls is the module's cost.  -h adds, before END, one line
 * "H <address> <instructions>" per address those were retired at.
 *
 * It runs some 20,000 instructions a second.  bench/native.py drives it.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_THREADS 1024
#define HIST_SLOTS  (1u << 17) /* a power of two */

typedef struct {
    pid_t tid;
    int live;
    int in_call;       /* inside a call into [range_lo, range_hi) */
    uint64_t entry_sp; /* the stack pointer at that call's entry */
    uint64_t next_ip;  /* the instruction the thread runs next ... */
    int next_own;      /* ... and whether it is part of such a call */
} step_thread;

typedef struct {
    uint64_t ip;
    uint64_t count;
} hist_slot;

static volatile sig_atomic_t report_wanted, stop_wanted;

static step_thread threads[MAX_THREADS];
static int nthreads;

static uint64_t range_lo, range_hi;
static int have_range, want_hist;
static hist_slot *hist;
static uint64_t hist_lost; /* own instructions with no slot left */

static uint64_t steps, own_steps;

static void on_report(int sig)
{
    (void)sig;
    report_wanted = 1;
}

static void on_stop(int sig)
{
    (void)sig;
    stop_wanted = 1;
}

static step_thread *thread_of(pid_t tid, int add)
{
    int i;

    for (i = 0; i < nthreads; i++) {
        if (threads[i].tid == tid) {
            return &threads[i];
        }
    }
    if (!add || nthreads == MAX_THREADS) {
        return NULL;
    }
    memset(&threads[nthreads], 0, sizeof(threads[nthreads]));
    threads[nthreads].tid = tid;
    threads[nthreads].live = 1;
    return &threads[nthreads++];
}

static void hist_add(uint64_t ip)
{
    uint32_t i = (uint32_t)((ip * 0x9e3779b97f4a7c15ULL) >> 47);
    uint32_t n;

    for (n = 0; n < HIST_SLOTS; n++, i++) {
        hist_slot *s = &hist[i & (HIST_SLOTS - 1)];
        if (s->ip == ip) {
            s->count++;
            return;
        }
        if (s->count == 0) {
            s->ip = ip;
            s->count = 1;
            return;
        }
    }
    hist_lost++;
}

static void report(void)
{
    uint32_t i;

    printf("COUNT %" PRIu64 " %" PRIu64 "\n", steps, own_steps);
    if (want_hist) {
        for (i = 0; i < HIST_SLOTS; i++) {
            if (hist[i].count) {
                printf("H %" PRIx64 " %" PRIu64 "\n", hist[i].ip,
                       hist[i].count);
            }
        }
        memset(hist, 0, HIST_SLOTS * sizeof(*hist));
        if (hist_lost) {
            printf("LOST %" PRIu64 "\n", hist_lost);
            hist_lost = 0;
        }
    }
    printf("END\n");
    fflush(stdout);
    steps = own_steps = 0;
}

/* Where the thread stopped: the instruction it runs next, and whether
 * that is part of a call into the range.  The step that follows counts
 * it. */
static void note_next(step_thread *th)
{
    struct user_regs_struct regs;

    if (ptrace(PTRACE_GETREGS, th->tid, NULL, &regs) != 0) {
        th->next_own = 0;
        return;
    }
    if (th->in_call && regs.rsp > th->entry_sp) {
        th->in_call = 0; /* the call has returned */
    }
    if (!th->in_call && regs.rip >= range_lo && regs.rip < range_hi) {
        th->in_call = 1;
        th->entry_sp = regs.rsp;
    }
    th->next_ip = regs.rip;
    th->next_own = th->in_call;
}

/* Seizes every thread of pid not seized yet; returns how many it took. */
static int attach_threads(pid_t pid)
{
    char path[64];
    DIR *dir;
    struct dirent *de;
    int added = 0;

    snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
    dir = opendir(path);
    if (dir == NULL) {
        fprintf(stderr, "stepcount: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((de = readdir(dir)) != NULL) {
        pid_t tid = (pid_t)strtol(de->d_name, NULL, 10);
        if (tid <= 0 || thread_of(tid, 0) != NULL) {
            continue;
        }
        if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACECLONE)
            != 0) {
            if (errno != ESRCH) { /* ESRCH: it has just exited */
                fprintf(stderr, "stepcount: attaching to thread %ld: %s\n",
                        (long)tid, strerror(errno));
                closedir(dir);
                return -1;
            }
            continue;
        }
        ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
        if (thread_of(tid, 1) == NULL) {
            fprintf(stderr, "stepcount: more than %d threads\n", MAX_THREADS);
            closedir(dir);
            return -1;
        }
        added++;
    }
    closedir(dir);
    return added;
}

/* Whether a SIGTRAP waits in the thread's own queue (SigPnd). */
static int trap_pending(pid_t tid)
{
    char path[64], line[128];
    unsigned long long mask = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)tid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "SigPnd: %llx", &mask) == 1) {
            break;
        }
    }
    fclose(f);
    return (mask & (1ULL << (SIGTRAP - 1))) != 0;
}

/* Stops every live thread and lets it go, with the signal it stopped for
 * if that was one meant for the process. */
static void detach_all(void)
{
    int i, left = 0;

    for (i = 0; i < nthreads; i++) {
        if (threads[i].live) {
            ptrace(PTRACE_INTERRUPT, threads[i].tid, NULL, NULL);
            left++;
        }
    }
    while (left > 0) {
        int status, sig, event;
        step_thread *th;
        pid_t tid = waitpid(-1, &status, __WALL);

        if (tid < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        th = thread_of(tid, 1);
        if (th == NULL || !th->live) {
            continue;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            th->live = 0;
            left--;
            continue;
        }
        if (!WIFSTOPPED(status)) {
            continue;
        }
        sig = WSTOPSIG(status);
        event = status >> 16;
        if (event == PTRACE_EVENT_CLONE) {
            unsigned long child;
            if (ptrace(PTRACE_GETEVENTMSG, tid, NULL, &child) == 0
                && thread_of((pid_t)child, 1) != NULL) {
                left++;
            }
        }
        if (event != 0 || sig == SIGTRAP) {
            sig = 0;
        }
        if (trap_pending(tid)) {
            /* the trap of the last step, queued: let it come and drop
             * it, or it kills the thread once it is on its own */
            ptrace(PTRACE_CONT, tid, NULL, (void *)(long)sig);
            continue;
        }
        ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)sig);
        th->live = 0;
        left--;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: stepcount [-h] PID [LO HI]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    pid_t pid;
    int argi = 1, pass, n, total = 0;

    if (argi < argc && strcmp(argv[argi], "-h") == 0) {
        want_hist = 1;
        argi++;
    }
    if (argc - argi != 1 && argc - argi != 3) {
        return usage();
    }
    pid = (pid_t)strtol(argv[argi], NULL, 10);
    if (pid <= 0) {
        return usage();
    }
    if (argc - argi == 3) {
        range_lo = strtoull(argv[argi + 1], NULL, 16);
        range_hi = strtoull(argv[argi + 2], NULL, 16);
        if (range_lo >= range_hi) {
            return usage();
        }
        have_range = 1;
    }
    if (want_hist) {
        if (!have_range) {
            return usage();
        }
        hist = calloc(HIST_SLOTS, sizeof(*hist));
        if (hist == NULL) {
            fprintf(stderr, "stepcount: out of memory\n");
            return 1;
        }
    }

    /* No SA_RESTART: a signal ends the wait for the next stop. */
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_report;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* A thread may start one while the list is read: read it again until
     * nothing is new (threads started by seized ones are seized too). */
    for (pass = 0; pass < 5; pass++) {
        n = attach_threads(pid);
        if (n < 0) {
            detach_all();
            return 1;
        }
        if (n == 0) {
            break;
        }
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "stepcount: no thread of %ld to attach to\n",
                (long)pid);
        return 1;
    }
    printf("ATTACHED %d\n", total);
    fflush(stdout);

    while (!stop_wanted) {
        int status, sig, event, inject = 0;
        step_thread *th;
        pid_t tid;

        if (report_wanted) {
            report_wanted = 0;
            report();
        }
        tid = waitpid(-1, &status, __WALL);
        if (tid < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != ECHILD) { /* ECHILD: every thread has gone */
                fprintf(stderr, "stepcount: waitpid: %s\n", strerror(errno));
            }
            break;
        }
        th = thread_of(tid, 1);
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (th != NULL) {
                th->live = 0;
            }
            continue;
        }
        if (!WIFSTOPPED(status)) {
            continue;
        }
        sig = WSTOPSIG(status);
        event = status >> 16;
        if (sig == SIGTRAP && event == 0) {
            /* a single step: the instruction noted at the last stop */
            steps++;
            if (th != NULL && th->next_own) {
                own_steps++;
                if (want_hist) {
                    hist_add(th->next_ip);
                }
            }
        }
        else if (event == PTRACE_EVENT_CLONE) {
            unsigned long child;
            if (ptrace(PTRACE_GETEVENTMSG, tid, NULL, &child) == 0) {
                thread_of((pid_t)child, 1);
            }
        }
        else if (event == 0) {
            inject = sig; /* a signal for the process: deliver it */
        }
        if (th != NULL && have_range) {
            note_next(th);
        }
        ptrace(PTRACE_SINGLESTEP, tid, NULL, (void *)(long)inject);
    }
    if (report_wanted) {
        report();
    }
    detach_all();
    return 0;
}
