/* devices/cpu.h: the execution API of the cpu device, for runners.
 *
 * A cpu device (device_cpu_ops in device.h) is a pool of dev->threads worker
 * threads, each pinned to one CPU of the process's affinity set (round-robin).
 * The pool is the device's execution context: runners run their parallel
 * kernels on it through cpu_device_parallel(), and the device's ping is a
 * checked round trip through every pool thread.
 *
 * ping: every pool thread computes a small sum stamped with the ping's
 * generation; the caller waits for all of them until a CLOCK_MONOTONIC
 * deadline. -ETIMEDOUT when a thread did not answer in time (stalled, hung),
 * -EIO on a wrong answer (reported first when both happen). Answers that
 * arrive after their ping gave up are dropped, never counted for a newer one.
 * Fault injection: hang_ping blocks the pool threads in faults_hang() inside
 * the kernel, error_ping makes the last thread answer wrong.
 *
 * close: stops and joins the threads. When one has not stopped within 1 s (a
 * wedged device: a thread hung in a kernel or an injected hang), close
 * detaches them all and deliberately leaks the device's pool state, which a
 * stuck thread may still touch when it wakes; the caller's struct mediad_device is
 * never touched by pool threads and stays the caller's.
 *
 * Calls on one device are serialised: a second cpu_device_parallel() (or a
 * ping) from another thread waits until the pool is free (a ping only until
 * its deadline). None of these may race with the device's close. */
#ifndef MEDIAD_DEVICES_CPU_H
#define MEDIAD_DEVICES_CPU_H

struct mediad_device;

/* Run fn(arg, i, count) once for every i in 0..count-1, spread over the pool
 * threads, and return when all calls have returned. The calling thread only
 * waits (the kernels run on the pinned pool, never on an unpinned caller),
 * except when it is itself a thread of this pool (a kernel that calls back
 * in): then the calls run inline, one after the other, instead of
 * deadlocking. Indices are handed out one at a time, so a stalled pool
 * thread slows the run down but does not stop it while another pool thread
 * still works. fn must not block forever: a kernel that never returns wedges
 * the device (which is what its ping then reports).
 *
 * 0 (also for count 0), -EINVAL on a negative count, a NULL fn or a device
 * that is not a cpu device, -ENODEV when the device is not open. */
int cpu_device_parallel(struct mediad_device *dev, void (*fn)(void *arg, int index, int count),
			void *arg, int count);

/* Number of pool threads (>= 1) of an open cpu device; -EINVAL or -ENODEV
 * as for cpu_device_parallel(). */
int cpu_device_threads(struct mediad_device *dev);

/* Tests and drills only: on != 0 makes pool thread thread_index block on a
 * condition variable before it takes any new work, until it is called again
 * with on == 0. It simulates a stuck pool thread, so a ping times out through
 * the real path. Closing the device releases a stalled thread. 0, or -EINVAL
 * (bad index, not a cpu device) or -ENODEV (not open). */
int cpu_device_test_stall(struct mediad_device *dev, int thread_index, int on);

#endif
