/*
 * VZFake.h: the C test API of the fake Virtualization framework (libVirtualization.so).
 *
 * Plain C, no Objective-C types: a test (C, C#, PowerShell) reaches these with dlsym /
 * NativeLibrary.GetExport. None of them exists in Apple's framework; a driver must never
 * call them outside tests.
 *
 * Strings returned by VZFakeCallLog/VZFakeEventLog belong to the library and stay valid
 * until the next call of the same function or of VZFakeReset, on any thread: copy them at once.
 * Every function here is thread-safe.
 */
#ifndef VZFAKE_H
#define VZFAKE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One line per call into the fake's Apple API: "-[Class selector]" or "+[Class selector]",
 * Class being the receiver's class. Lines end with '\n'. */
const char *VZFakeCallLog(void);

/* One line per thing the fake did on its own: completion handlers and delegate methods it
 * invoked, exceptions it raised, e.g.
 *   "completion -[VZVirtualMachine startWithCompletionHandler:] error=0"
 *   "delegate -[<class> guestDidStopVirtualMachine:]"
 *   "exception NSInvalidArgumentException: ..." */
const char *VZFakeEventLog(void);

/* Clears both logs and pending failures, and puts the knobs below back to their defaults.
 * Live objects and running virtual machines are left alone. */
void VZFakeReset(void);

/* The next call of `selector` (e.g. "startWithCompletionHandler:", "validateWithError:")
 * fails with an NSError in VZErrorDomain with this code. Queued: two calls inject two failures.
 * See README.md for the selectors that honour it. */
void VZFakeFailNext(const char *selector, long code);

/* How long (milliseconds) the fake waits before it runs a completion handler or a delegate
 * method on its worker thread. Default 10. */
void VZFakeSetDelayMs(int milliseconds);

/* Waits until the worker thread has nothing queued or running. Returns 1 when idle, 0 on
 * timeout. Do not call it from a completion handler (the worker would wait for itself). */
int VZFakeWaitIdle(int timeoutMilliseconds);

/* Instances of the fake's classes alive now (allocated, not yet deallocated); className NULL
 * counts them all. For ownership tests: after a test has released everything and drained
 * its autorelease pools, it should be 0. */
long VZFakeLiveObjects(const char *className);

/* Whether -validateWithError: refuses a network device configuration whose attachment is nil.
 * Default 1, as Apple's header says ("The configuration is only valid with valid MACAddress and
 * attachment"); 0 models a framework that accepts it. Unverified on a Mac. Setting
 * VZNetworkDevice.attachment to nil on a running VM is always accepted (documented by Apple). */
void VZFakeSetRequireNetworkAttachment(int require);

/* Returns its argument and does nothing else: the baseline of the binding benchmark (one direct
 * C call from .NET, beside one message send through the driver's binding layer). */
void *VZFakeBenchNop(void *value);

/* ---- the simulated guest ---- */

/* The guest connects from its port `guestPort` to host port `port` on the VM's first
 * VZVirtioSocketDevice. The listener set for that port (if any) is asked through its delegate's
 * listener:shouldAcceptNewConnection:fromSocketDevice: on the worker thread. Returns the guest
 * end of the connection (a socketpair fd the caller closes) when accepted, -1 when refused,
 * when no listener is set, or when the VM is not running. Blocks until the delegate answered. */
int VZFakeGuestConnect(void *virtualMachine, uint32_t port, uint32_t guestPort);

/* Makes the guest listen (listening != 0) or stop listening on a vsock port, for
 * -[VZVirtioSocketDevice connectToPort:completionHandler:]. */
void VZFakeGuestListen(void *virtualMachine, uint32_t port, int listening);

/* The guest end (fd, caller closes) of the oldest host connection made with connectToPort: to
 * `port` and not yet taken, or -1. */
int VZFakeGuestAccept(void *virtualMachine, uint32_t port);

/* The guest powers off by itself: state becomes Stopped and the delegate's
 * guestDidStopVirtualMachine: runs on the worker thread. No-op unless running or paused. */
void VZFakeGuestStop(void *virtualMachine);

/* The VM dies: state becomes Error and the delegate's virtualMachine:didStopWithError: runs
 * with an NSError (VZErrorDomain, code). No-op unless running, paused or starting. */
void VZFakeGuestError(void *virtualMachine, long code);

/* Whether the guest obeys -requestStopWithError: (powers off a delay later). Default 1. */
void VZFakeSetGuestHonorsStopRequest(int honors);

/* The host network drops network device `index`: its attachment becomes nil and the delegate's
 * virtualMachine:networkDevice:attachmentWasDisconnectedWithError: runs (VZErrorDomain, code). */
void VZFakeDisconnectNetwork(void *virtualMachine, unsigned index, long code);

#ifdef __cplusplus
}
#endif

#endif /* VZFAKE_H */
