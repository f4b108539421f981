/*
 * Smoke test of the fake Virtualization framework, driving it the way the .NET driver will:
 * dlopen the library (RTLD_LAZY, local, like NativeLibrary.Load), then only objc_getClass /
 * sel_registerName / class_getMethodImplementation and calls through exact, non-variadic
 * function-pointer types; blocks are built by hand (isa from libBlocksRuntime, copy/dispose
 * helpers, signature); delegates are classes made at run time with objc_allocateClassPair.
 * No Foundation header is used. Objective-C is only needed for @try/@catch around the calls
 * that must raise.
 *
 *   vzfake-smoke /path/to/libVirtualization.so          run the checks, print "N passed, N failed"
 *   vzfake-smoke /path/to/libVirtualization.so --dump   print every VZ* method with its encoding
 */
#include <objc/runtime.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "VZFake.h"

/* ---- checks ---------------------------------------------------------------------------- */

static int g_passed, g_failed;
static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) g_passed++; else g_failed++;
}
static void die(const char *what) {
    fprintf(stderr, "smoke: fatal: %s\n", what);
    exit(2);
}

/* ---- the C test API, looked up like the driver's tests will ---------------------------- */

static const char *(*pCallLog)(void);
static const char *(*pEventLog)(void);
static void (*pReset)(void);
static void (*pFailNext)(const char *, long);
static void (*pSetDelayMs)(int);
static int (*pWaitIdle)(int);
static long (*pLiveObjects)(const char *);
static int (*pGuestConnect)(void *, uint32_t, uint32_t);
static void (*pGuestListen)(void *, uint32_t, int);
static int (*pGuestAccept)(void *, uint32_t);
static void (*pGuestStop)(void *);
static void (*pHonorsStop)(int);
static void (*pGuestError)(void *, long);
static void (*pDisconnectNetwork)(void *, unsigned, long);
static void (*pRequireNetworkAttachment)(int);

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) { fprintf(stderr, "smoke: missing symbol %s\n", name); exit(2); }
    return p;
}

/* ---- runtime helpers ------------------------------------------------------------------- */

static SEL S(const char *name) { return sel_registerName(name); }
static Class C(const char *name) {
    Class c = objc_getClass(name);
    if (!c) { fprintf(stderr, "smoke: no class %s\n", name); exit(2); }
    return c;
}
/* The isa of an object, or the metaclass of a class: what the driver reads on the GNU runtime. */
static Class isa_of(id obj) { return *(Class *)obj; }
/* IMP for a message, after checking the receiver really responds (the forwarding IMP is not null). */
static IMP imp(id receiver, SEL sel) {
    if (!receiver) die("message to nil");
    Class cls = isa_of(receiver);
    if (!class_respondsToSelector(cls, sel)) {
        fprintf(stderr, "smoke: %s does not respond to %s\n", class_getName(cls), sel_getName(sel));
        exit(2);
    }
    return class_getMethodImplementation(cls, sel);
}
/* SEND(return type, (argument types), receiver, "selector", arguments...); the receiver is
 * evaluated once. */
#define SEND(R, ARGS, obj, sel, ...)                                  \
    ({                                                                \
        id recv_ = (id)(obj);                                         \
        SEL sel_ = S(sel);                                            \
        ((R(*) ARGS)imp(recv_, sel_))(recv_, sel_, ##__VA_ARGS__);    \
    })

static id msg0(id obj, const char *sel) { return SEND(id, (id, SEL), obj, sel); }
static void vmsg0(id obj, const char *sel) { SEND(void, (id, SEL), obj, sel); }
static id msg1(id obj, const char *sel, id a) { return SEND(id, (id, SEL, id), obj, sel, a); }
static void vmsg1(id obj, const char *sel, id a) { SEND(void, (id, SEL, id), obj, sel, a); }
static long lmsg0(id obj, const char *sel) { return SEND(long, (id, SEL), obj, sel); }
static unsigned char bmsg0(id obj, const char *sel) { return SEND(unsigned char, (id, SEL), obj, sel); }
static id alloc_(const char *cls) { return msg0((id)C(cls), "alloc"); }
static id new_(const char *cls) { return msg0(alloc_(cls), "init"); }
static void release(id obj) { if (obj) vmsg0(obj, "release"); }
static id retain_(id obj) { return obj ? msg0(obj, "retain") : obj; }
static const char *class_name(id obj) { return obj ? class_getName(isa_of(obj)) : "nil"; }

static id nsstr(const char *s) { return SEND(id, (id, SEL, const char *), (id)C("NSString"), "stringWithUTF8String:", s); }
static const char *utf8(id s) { return s ? SEND(const char *, (id, SEL), s, "UTF8String") : "(nil)"; }
static id file_url(const char *path) { return msg1((id)C("NSURL"), "fileURLWithPath:", nsstr(path)); }
static id array_of(id *items, unsigned long n) {
    return SEND(id, (id, SEL, id *, unsigned long), (id)C("NSArray"), "arrayWithObjects:count:", items, n);
}
static id array1(id a) { return array_of(&a, 1); }
static unsigned long count_of(id array) { return SEND(unsigned long, (id, SEL), array, "count"); }
static id at_index(id array, unsigned long i) { return SEND(id, (id, SEL, unsigned long), array, "objectAtIndex:", i); }
static long err_code(id error) { return error ? lmsg0(error, "code") : 0; }
static const char *err_domain(id error) { return error ? utf8(msg0(error, "domain")) : ""; }
static int is_kind(id obj, const char *cls) { return SEND(unsigned char, (id, SEL, Class), obj, "isKindOfClass:", C(cls)) != 0; }
static long state_of(id vm) { return lmsg0(vm, "state"); }
static int contains(const char *haystack, const char *needle) { return haystack && strstr(haystack, needle) != NULL; }

/* ---- blocks built by hand (what the driver does) --------------------------------------- */

enum { BLOCK_HAS_COPY_DISPOSE = 1 << 25, BLOCK_HAS_SIGNATURE = 1 << 30 };

typedef struct Expect {
    volatile int done;
    long code;
    char domain[64];
    pthread_t thread;
    volatile int copies, disposes;
    id object; /* connection from connectToPort:, retained */
} Expect;

struct BlockDescriptor {
    unsigned long reserved, size;
    void (*copy)(void *dst, void *src);
    void (*dispose)(void *blk);
    const char *signature;
};
struct Block {
    void *isa;
    int flags, reserved;
    void *invoke;
    struct BlockDescriptor *descriptor;
    Expect *expect; /* the captured variable */
};

static void *g_stackBlockIsa;

static void block_copy_helper(void *dst, void *src) {
    ((struct Block *)dst)->expect = ((struct Block *)src)->expect;
    __atomic_add_fetch(&((struct Block *)src)->expect->copies, 1, __ATOMIC_SEQ_CST);
}
static void block_dispose_helper(void *blk) { __atomic_add_fetch(&((struct Block *)blk)->expect->disposes, 1, __ATOMIC_SEQ_CST); }

static void completion_invoke(struct Block *b, id error) {
    Expect *e = b->expect;
    e->code = err_code(error);
    snprintf(e->domain, sizeof e->domain, "%s", err_domain(error));
    e->thread = pthread_self();
    __atomic_store_n(&e->done, 1, __ATOMIC_SEQ_CST);
}
static void connect_invoke(struct Block *b, id connection, id error) {
    Expect *e = b->expect;
    e->code = err_code(error);
    e->object = retain_(connection);
    e->thread = pthread_self();
    __atomic_store_n(&e->done, 1, __ATOMIC_SEQ_CST);
}

static struct BlockDescriptor g_completionDescriptor = { 0, sizeof(struct Block), block_copy_helper, block_dispose_helper, "v16@?0@8" };
static struct BlockDescriptor g_connectDescriptor = { 0, sizeof(struct Block), block_copy_helper, block_dispose_helper, "v24@?0@8@16" };

static struct Block make_block(Expect *e, void *invoke, struct BlockDescriptor *d) {
    memset(e, 0, sizeof *e);
    struct Block b = { g_stackBlockIsa, BLOCK_HAS_COPY_DISPOSE | BLOCK_HAS_SIGNATURE, 0, invoke, d, e };
    return b;
}

static int wait_done(Expect *e) {
    for (int i = 0; i < 500 && !__atomic_load_n(&e->done, __ATOMIC_SEQ_CST); i++) usleep(10000);
    return e->done;
}

/* Calls `sel` (void (^)(NSError *) completion) and waits for the handler. Returns the error code. */
static long run_op(id vm, const char *sel, Expect *e) {
    struct Block b = make_block(e, (void *)completion_invoke, &g_completionDescriptor);
    SEND(void, (id, SEL, void *), vm, sel, &b);
    if (!wait_done(e)) { check(0, "%s: completion handler called", sel); return -1; }
    pWaitIdle(2000);
    return e->code;
}
static long run_url_op(id vm, const char *sel, id url, Expect *e) {
    struct Block b = make_block(e, (void *)completion_invoke, &g_completionDescriptor);
    SEND(void, (id, SEL, id, void *), vm, sel, url, &b);
    if (!wait_done(e)) { check(0, "%s: completion handler called", sel); return -1; }
    pWaitIdle(2000);
    return e->code;
}

/* ---- delegates made at run time -------------------------------------------------------- */

static volatile int g_guestDidStop, g_didStopWithError, g_disconnected, g_accepts;
static volatile long g_lastErrorCode;
static id g_acceptedConnection; /* retained by the listener delegate, like a driver would */
static pthread_t g_delegateThread;

static void vm_guest_did_stop(id self, SEL _cmd, id vm) { g_delegateThread = pthread_self(); g_guestDidStop++; }
static void vm_did_stop_with_error(id self, SEL _cmd, id vm, id error) { g_lastErrorCode = err_code(error); g_didStopWithError++; }
static void vm_attachment_disconnected(id self, SEL _cmd, id vm, id device, id error) { g_lastErrorCode = err_code(error); g_disconnected++; }
static unsigned char listener_should_accept(id self, SEL _cmd, id listener, id connection, id device) {
    g_accepts++;
    g_delegateThread = pthread_self();
    uint32_t port = SEND(uint32_t, (id, SEL), connection, "destinationPort");
    if (port != 1024) return 0;
    g_acceptedConnection = retain_(connection);
    return 1;
}

static Class make_class(const char *name, const char *protocol) {
    Class cls = objc_allocateClassPair(C("NSObject"), name, 0);
    if (!cls) die("objc_allocateClassPair");
    if (protocol) {
        Protocol *p = objc_getProtocol(protocol);
        check(p != NULL, "objc_getProtocol(\"%s\") finds the fake's protocol", protocol);
        if (p) class_addProtocol(cls, p);
    }
    return cls;
}

/* ---- files ----------------------------------------------------------------------------- */

static char g_dir[256];
static const char *path_in(const char *name) {
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}
static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) die(path);
    fputs(text, f);
    fclose(f);
}
static int file_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

/* ---- --dump ---------------------------------------------------------------------------- */

static int dump_encodings(void) {
    int n = objc_getClassList(NULL, 0);
    Class *classes = calloc((size_t)n, sizeof *classes);
    n = objc_getClassList(classes, n);
    for (int i = 0; i < n; i++) {
        const char *name = class_getName(classes[i]);
        if (strncmp(name, "VZ", 2) != 0) continue;
        printf("%s : %s\n", name, class_getName(class_getSuperclass(classes[i])));
        for (int meta = 1; meta >= 0; meta--) {
            unsigned count = 0;
            Method *methods = class_copyMethodList(meta ? object_getClass((id)classes[i]) : classes[i], &count);
            for (unsigned j = 0; j < count; j++) {
                const char *sel = sel_getName(method_getName(methods[j]));
                if (sel[0] == '_' || !strcmp(sel, "dealloc") || !strcmp(sel, "allocWithZone:")) continue;
                printf("  %c%s %s\n", meta ? '+' : '-', sel, method_getTypeEncoding(methods[j]));
            }
            free(methods);
        }
    }
    free(classes);
    return 0;
}

/* ---- the Linux VM ---------------------------------------------------------------------- */

static void linux_vm(void) {
    Expect e;
    id err = NULL;
    write_file(path_in("vmlinux"), "kernel");
    write_file(path_in("initrd"), "initrd");
    write_file(path_in("disk.img"), "disk");

    id boot = msg1(alloc_("VZLinuxBootLoader"), "initWithKernelURL:", file_url(path_in("vmlinux")));
    vmsg1(boot, "setInitialRamdiskURL:", file_url(path_in("initrd")));
    vmsg1(boot, "setCommandLine:", nsstr("console=hvc0 quiet"));
    check(!strcmp(utf8(msg0(boot, "commandLine")), "console=hvc0 quiet"), "VZLinuxBootLoader commandLine round-trips");
    check(contains(utf8(msg0(msg0(boot, "kernelURL"), "path")), "/vmlinux"), "VZLinuxBootLoader kernelURL round-trips");

    id disk = SEND(id, (id, SEL, id, unsigned char, id *), alloc_("VZDiskImageStorageDeviceAttachment"),
                   "initWithURL:readOnly:error:", file_url(path_in("disk.img")), 0, &err);
    check(disk != NULL && err == NULL, "VZDiskImageStorageDeviceAttachment opens an existing image");
    id missing = SEND(id, (id, SEL, id, unsigned char, id *), alloc_("VZDiskImageStorageDeviceAttachment"),
                      "initWithURL:readOnly:error:", file_url(path_in("no-such.img")), 1, &err);
    check(missing == NULL && err_code(err) == ENOENT, "a missing disk image gives nil and an error (code %ld, %s)", err_code(err), err_domain(err));
    id block = msg1(alloc_("VZVirtioBlockDeviceConfiguration"), "initWithAttachment:", disk);

    id nat = new_("VZNATNetworkDeviceAttachment");
    id nic0 = new_("VZVirtioNetworkDeviceConfiguration");
    id mac = msg1(alloc_("VZMACAddress"), "initWithString:", nsstr("02:00:00:00:00:01"));
    vmsg1(nic0, "setMACAddress:", mac);
    vmsg1(nic0, "setAttachment:", nat);
    check(!strcmp(utf8(msg0(msg0(nic0, "MACAddress"), "string")), "02:00:00:00:00:01"), "VZMACAddress string round-trips");
    check(bmsg0(mac, "isLocallyAdministeredAddress") && bmsg0(mac, "isUnicastAddress"), "VZMACAddress bits");
    struct { unsigned char octet[6]; } ea = SEND(__typeof__(ea), (id, SEL), mac, "ethernetAddress");
    check(ea.octet[0] == 2 && ea.octet[5] == 1, "-[VZMACAddress ethernetAddress] returns the 6-byte struct");
    check(msg1(alloc_("VZMACAddress"), "initWithString:", nsstr("nonsense")) == NULL, "VZMACAddress initWithString: rejects a bad string");
    id random = msg0((id)C("VZMACAddress"), "randomLocallyAdministeredAddress");
    check(bmsg0(random, "isLocallyAdministeredAddress"), "+[VZMACAddress randomLocallyAdministeredAddress] is locally administered");

    int dgram[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram) != 0) die("socketpair");
    id handle = SEND(id, (id, SEL, int, unsigned char), alloc_("NSFileHandle"), "initWithFileDescriptor:closeOnDealloc:", dgram[0], 1);
    id fhAttachment = msg1(alloc_("VZFileHandleNetworkDeviceAttachment"), "initWithFileHandle:", handle);
    check(lmsg0(fhAttachment, "maximumTransmissionUnit") == 1500, "VZFileHandleNetworkDeviceAttachment MTU defaults to 1500");
    id nic1 = new_("VZVirtioNetworkDeviceConfiguration");
    vmsg1(nic1, "setAttachment:", fhAttachment);

    int pipeIn[2], pipeOut[2];
    if (pipe(pipeIn) || pipe(pipeOut)) die("pipe");
    id rd = SEND(id, (id, SEL, int, unsigned char), alloc_("NSFileHandle"), "initWithFileDescriptor:closeOnDealloc:", pipeIn[0], 1);
    id wr = SEND(id, (id, SEL, int, unsigned char), alloc_("NSFileHandle"), "initWithFileDescriptor:closeOnDealloc:", pipeOut[1], 1);
    id serialAttachment = SEND(id, (id, SEL, id, id), alloc_("VZFileHandleSerialPortAttachment"),
                               "initWithFileHandleForReading:fileHandleForWriting:", rd, wr);
    id serial = new_("VZVirtioConsoleDeviceSerialPortConfiguration");
    vmsg1(serial, "setAttachment:", serialAttachment);
    id vsock = new_("VZVirtioSocketDeviceConfiguration");
    id platform = new_("VZGenericPlatformConfiguration");

    id config = new_("VZVirtualMachineConfiguration");
    vmsg1(config, "setBootLoader:", boot);
    vmsg1(config, "setPlatform:", platform);
    SEND(void, (id, SEL, unsigned long), config, "setCPUCount:", 2UL);
    SEND(void, (id, SEL, uint64_t), config, "setMemorySize:", 512ULL << 20);
    vmsg1(config, "setStorageDevices:", array1(block));
    id nics[2] = { nic0, nic1 };
    vmsg1(config, "setNetworkDevices:", array_of(nics, 2));
    vmsg1(config, "setSerialPorts:", array1(serial));
    vmsg1(config, "setSocketDevices:", array1(vsock));
    check(SEND(unsigned long, (id, SEL), config, "CPUCount") == 2, "CPUCount round-trips");
    check(SEND(uint64_t, (id, SEL), config, "memorySize") == 512ULL << 20, "memorySize round-trips");
    check(count_of(msg0(config, "networkDevices")) == 2, "networkDevices round-trips");

    err = NULL;
    check(SEND(unsigned char, (id, SEL, id *), config, "validateWithError:", &err) && !err, "Linux configuration validates");
    check(SEND(unsigned char, (id, SEL, id *), config, "validateSaveRestoreSupportWithError:", &err), "Linux configuration supports save/restore");
    pFailNext("validateWithError:", 2);
    check(!SEND(unsigned char, (id, SEL, id *), config, "validateWithError:", &err) && err_code(err) == 2 &&
              !strcmp(err_domain(err), "VZErrorDomain"),
          "VZFakeFailNext makes validateWithError: fail (code %ld, domain %s)", err_code(err), err_domain(err));
    check(SEND(unsigned char, (id, SEL, id *), config, "validateWithError:", &err), "the injected failure is used once");
    SEND(void, (id, SEL, unsigned long), config, "setCPUCount:", 0UL);
    check(!SEND(unsigned char, (id, SEL, id *), config, "validateWithError:", &err) && err_code(err) == 2, "CPUCount 0 does not validate");
    SEND(void, (id, SEL, unsigned long), config, "setCPUCount:", 2UL);

    /* The VM */
    id vm = SEND(id, (id, SEL, id, void *), alloc_("VZVirtualMachine"), "initWithConfiguration:queue:", config, (void *)0x1);
    check(vm != NULL && state_of(vm) == 0, "VZVirtualMachine starts Stopped (0)");
    check(bmsg0(vm, "canStart") && !bmsg0(vm, "canPause"), "canStart YES, canPause NO when stopped");

    Class delegateClass = make_class("SmokeVMDelegate", "VZVirtualMachineDelegate");
    class_addMethod(delegateClass, S("guestDidStopVirtualMachine:"), (IMP)vm_guest_did_stop, "v24@0:8@16");
    class_addMethod(delegateClass, S("virtualMachine:didStopWithError:"), (IMP)vm_did_stop_with_error, "v32@0:8@16@24");
    class_addMethod(delegateClass, S("virtualMachine:networkDevice:attachmentWasDisconnectedWithError:"),
                    (IMP)vm_attachment_disconnected, "v40@0:8@16@24@32");
    objc_registerClassPair(delegateClass);
    id delegate = new_("SmokeVMDelegate");
    vmsg1(vm, "setDelegate:", delegate);
    check(msg0(vm, "delegate") == delegate, "delegate round-trips");

    /* start */
    struct Block b = make_block(&e, (void *)completion_invoke, &g_completionDescriptor);
    SEND(void, (id, SEL, void *), vm, "startWithCompletionHandler:", &b);
    check(!e.done, "start: handler not called before the method returned");
    check(state_of(vm) == 4, "start: state Starting (4) at once, got %ld", state_of(vm));
    check(wait_done(&e) && e.code == 0, "start: handler called with nil error");
    check(!pthread_equal(e.thread, pthread_self()), "start: handler ran on another thread");
    pWaitIdle(2000);
    check(e.copies == 1 && e.disposes == 1, "start: the fake copied the block once and released it (copies %d, disposes %d)", e.copies, e.disposes);
    check(state_of(vm) == 1, "start: state Running (1)");
    check(bmsg0(vm, "canPause") && bmsg0(vm, "canStop") && bmsg0(vm, "canRequestStop") && !bmsg0(vm, "canStart"), "can* when running");

    /* pause / save / resume */
    b = make_block(&e, (void *)completion_invoke, &g_completionDescriptor);
    SEND(void, (id, SEL, void *), vm, "pauseWithCompletionHandler:", &b);
    check(state_of(vm) == 5, "pause: state Pausing (5) at once");
    check(wait_done(&e) && e.code == 0, "pause: handler called with nil error");
    pWaitIdle(2000);
    check(state_of(vm) == 2 && bmsg0(vm, "canResume"), "pause: state Paused (2), canResume");

    const char *savePath = path_in("linux.vzstate");
    check(run_url_op(vm, "saveMachineStateToURL:completionHandler:", file_url(savePath), &e) == 0, "save: nil error");
    check(file_exists(savePath), "save: wrote %s", savePath);
    check(state_of(vm) == 2, "save: state back to Paused");
    check(contains(pEventLog(), "saveMachineStateToURL:completionHandler:] error=0 state=Paused"), "save: event log records the completion");

    check(run_op(vm, "resumeWithCompletionHandler:", &e) == 0 && state_of(vm) == 1, "resume: Running");
    check(run_url_op(vm, "saveMachineStateToURL:completionHandler:", file_url(path_in("x.vzstate")), &e) == 3,
          "save while running: VZErrorInvalidVirtualMachineState (3)");
    check(run_url_op(vm, "restoreMachineStateFromURL:completionHandler:", file_url(savePath), &e) == 4,
          "restore while running: VZErrorInvalidVirtualMachineStateTransition (4)");

    /* NIC attachment at run time */
    id devices = msg0(vm, "networkDevices");
    check(count_of(devices) == 2 && !strcmp(class_name(at_index(devices, 0)), "VZNetworkDevice"), "networkDevices: 2 VZNetworkDevice");
    id dev0 = at_index(devices, 0);
    check(is_kind(msg0(dev0, "attachment"), "VZNATNetworkDeviceAttachment"), "network device 0 starts with the NAT attachment");
    vmsg1(dev0, "setAttachment:", NULL);
    check(msg0(dev0, "attachment") == NULL, "attachment can be set to nil (unplugged)");
    int dgram2[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram2) != 0) die("socketpair");
    id handle2 = SEND(id, (id, SEL, int, unsigned char), alloc_("NSFileHandle"), "initWithFileDescriptor:closeOnDealloc:", dgram2[0], 1);
    id fh2 = msg1(alloc_("VZFileHandleNetworkDeviceAttachment"), "initWithFileHandle:", handle2);
    vmsg1(dev0, "setAttachment:", fh2);
    check(msg0(dev0, "attachment") == fh2, "attachment can be changed to a file-handle attachment");
    pFailNext("setAttachment:", 7);
    vmsg1(dev0, "setAttachment:", nat);
    pWaitIdle(2000);
    check(g_disconnected == 1 && g_lastErrorCode == 7 && msg0(dev0, "attachment") == NULL,
          "a failed attachment change: delegate told (code %ld), attachment nil", g_lastErrorCode);
    vmsg1(dev0, "setAttachment:", nat);
    pDisconnectNetwork(vm, 0, 7);
    pWaitIdle(2000);
    check(g_disconnected == 2 && msg0(dev0, "attachment") == NULL, "VZFakeDisconnectNetwork drops the attachment and tells the delegate");
    vmsg1(dev0, "setAttachment:", nat);

    /* vsock: guest -> host through a listener */
    id sockets = msg0(vm, "socketDevices");
    check(count_of(sockets) == 1 && !strcmp(class_name(at_index(sockets, 0)), "VZVirtioSocketDevice"), "socketDevices: 1 VZVirtioSocketDevice");
    id socketDevice = at_index(sockets, 0);
    Class listenerDelegateClass = make_class("SmokeListenerDelegate", "VZVirtioSocketListenerDelegate");
    class_addMethod(listenerDelegateClass, S("listener:shouldAcceptNewConnection:fromSocketDevice:"), (IMP)listener_should_accept, "C40@0:8@16@24@32");
    objc_registerClassPair(listenerDelegateClass);
    id listenerDelegate = new_("SmokeListenerDelegate");
    id listener = new_("VZVirtioSocketListener");
    vmsg1(listener, "setDelegate:", listenerDelegate);
    SEND(void, (id, SEL, id, uint32_t), socketDevice, "setSocketListener:forPort:", listener, 1024);
    SEND(void, (id, SEL, id, uint32_t), socketDevice, "setSocketListener:forPort:", listener, 1025);
    int guestFd = pGuestConnect(vm, 1024, 5000);
    check(guestFd >= 0 && g_acceptedConnection != NULL, "guest connection to port 1024 accepted by the delegate");
    check(!pthread_equal(g_delegateThread, pthread_self()), "listener delegate ran on another thread");
    if (g_acceptedConnection) {
        check(SEND(uint32_t, (id, SEL), g_acceptedConnection, "sourcePort") == 5000 &&
                  SEND(uint32_t, (id, SEL), g_acceptedConnection, "destinationPort") == 1024,
              "connection ports: source 5000 (guest), destination 1024");
        int hostFd = SEND(int, (id, SEL), g_acceptedConnection, "fileDescriptor");
        char buf[16] = { 0 };
        check(write(guestFd, "ping", 4) == 4 && read(hostFd, buf, sizeof buf) == 4 && !memcmp(buf, "ping", 4), "bytes flow guest -> host");
        vmsg0(g_acceptedConnection, "close");
        check(SEND(int, (id, SEL), g_acceptedConnection, "fileDescriptor") == -1, "close: fileDescriptor -1");
        check(read(guestFd, buf, sizeof buf) == 0, "close: the guest sees end of file");
        release(g_acceptedConnection);
        g_acceptedConnection = NULL;
    }
    if (guestFd >= 0) close(guestFd);
    check(pGuestConnect(vm, 1025, 5001) == -1 && g_accepts == 2, "the delegate refusing port 1025 refuses the connection");
    check(pGuestConnect(vm, 1026, 5002) == -1, "no listener on port 1026: refused");
    SEND(void, (id, SEL, uint32_t), socketDevice, "removeSocketListenerForPort:", 1024);
    check(pGuestConnect(vm, 1024, 5003) == -1 && g_accepts == 2, "removeSocketListenerForPort: removes it");

    /* vsock: host -> guest */
    pGuestListen(vm, 2000, 1);
    struct Block cb = make_block(&e, (void *)connect_invoke, &g_connectDescriptor);
    SEND(void, (id, SEL, uint32_t, void *), socketDevice, "connectToPort:completionHandler:", 2000, &cb);
    check(wait_done(&e) && e.code == 0 && e.object != NULL, "connectToPort: to a listening guest port gives a connection");
    int guestEnd = pGuestAccept(vm, 2000);
    if (e.object && guestEnd >= 0) {
        char buf[8] = { 0 };
        int hostFd = SEND(int, (id, SEL), e.object, "fileDescriptor");
        check(write(hostFd, "pong", 4) == 4 && read(guestEnd, buf, sizeof buf) == 4 && !memcmp(buf, "pong", 4), "bytes flow host -> guest");
        close(guestEnd);
    } else {
        check(0, "VZFakeGuestAccept gives the guest end");
    }
    release(e.object);
    pWaitIdle(2000);
    cb = make_block(&e, (void *)connect_invoke, &g_connectDescriptor);
    SEND(void, (id, SEL, uint32_t, void *), socketDevice, "connectToPort:completionHandler:", 2001, &cb);
    check(wait_done(&e) && e.code == ECONNRESET && e.object == NULL, "connectToPort: to a port the guest does not listen on fails");
    pWaitIdle(2000);

    /* requestStop: the guest powers off; delegate told */
    err = NULL;
    check(SEND(unsigned char, (id, SEL, id *), vm, "requestStopWithError:", &err), "requestStopWithError: YES when running");
    pWaitIdle(2000);
    check(g_guestDidStop == 1 && state_of(vm) == 0, "guest stopped: guestDidStopVirtualMachine:, state Stopped");
    check(!pthread_equal(g_delegateThread, pthread_self()), "VM delegate ran on another thread");
    check(!SEND(unsigned char, (id, SEL, id *), vm, "requestStopWithError:", &err) && err_code(err) == 3,
          "requestStopWithError: NO when stopped (code %ld)", err_code(err));

    /* restore from the saved file */
    check(run_url_op(vm, "restoreMachineStateFromURL:completionHandler:", file_url(path_in("nothing.vzstate")), &e) == 12 &&
              state_of(vm) == 0,
          "restore from a missing file: VZErrorRestore (12), still Stopped");
    b = make_block(&e, (void *)completion_invoke, &g_completionDescriptor);
    SEND(void, (id, SEL, id, void *), vm, "restoreMachineStateFromURL:completionHandler:", file_url(savePath), &b);
    check(state_of(vm) == 9, "restore: state Restoring (9) at once");
    check(wait_done(&e) && e.code == 0, "restore: nil error");
    pWaitIdle(2000);
    check(state_of(vm) == 2, "restore: state Paused (2)");
    check(run_op(vm, "resumeWithCompletionHandler:", &e) == 0 && state_of(vm) == 1, "resume after restore: Running");

    /* stop, wrong transitions, injected start failure, guest error */
    check(run_op(vm, "stopWithCompletionHandler:", &e) == 0 && state_of(vm) == 0, "stop: Stopped");
    check(run_op(vm, "pauseWithCompletionHandler:", &e) == 4 && state_of(vm) == 0, "pause when stopped: code 4, state unchanged");
    pFailNext("startWithCompletionHandler:", 1);
    check(run_op(vm, "startWithCompletionHandler:", &e) == 1 && state_of(vm) == 0, "injected start failure: code 1, state Stopped");
    check(!strcmp(e.domain, "VZErrorDomain"), "injected error domain VZErrorDomain");
    check(run_op(vm, "startWithCompletionHandler:", &e) == 0 && state_of(vm) == 1, "start again: Running");
    pHonorsStop(0);
    check(SEND(unsigned char, (id, SEL, id *), vm, "requestStopWithError:", &err), "requestStopWithError: YES (guest set to ignore it)");
    pWaitIdle(2000);
    check(state_of(vm) == 1 && g_guestDidStop == 1, "a guest ignoring the request keeps running");
    pHonorsStop(1);
    pGuestStop(vm);
    pWaitIdle(2000);
    check(state_of(vm) == 0 && g_guestDidStop == 2, "VZFakeGuestStop: the guest powers off, delegate told");
    check(run_op(vm, "startWithCompletionHandler:", &e) == 0 && state_of(vm) == 1, "start again: Running");
    pGuestError(vm, 1);
    pWaitIdle(2000);
    check(g_didStopWithError == 1 && g_lastErrorCode == 1 && state_of(vm) == 3, "VZFakeGuestError: didStopWithError:, state Error (3)");
    check(bmsg0(vm, "canStart"), "canStart in Error");

    /* the call log */
    const char *log = pCallLog();
    check(contains(log, "-[VZVirtualMachine startWithCompletionHandler:]\n") &&
              contains(log, "-[VZVirtualMachineConfiguration validateWithError:]\n") &&
              contains(log, "+[VZMACAddress randomLocallyAdministeredAddress]\n") &&
              contains(log, "-[VZVirtioNetworkDeviceConfiguration setAttachment:]\n") &&
              contains(log, "-[VZNetworkDevice setAttachment:]\n") &&
              contains(log, "-[VZVirtioSocketDevice setSocketListener:forPort:]\n") &&
              contains(log, "-[VZVirtualMachine initWithConfiguration:queue:]\n"),
          "call log has one line per call");
    check(!contains(log, "copyWithZone:"), "call log leaves out the fake's own internal calls");

    vmsg1(vm, "setDelegate:", NULL);
    vmsg1(listener, "setDelegate:", NULL);
    release(vm);
    release(delegate);
    release(listener);
    release(listenerDelegate);
    release(config); release(boot); release(disk); release(block); release(nat); release(nic0); release(nic1); release(mac);
    release(handle); release(fhAttachment); release(rd); release(wr); release(serialAttachment); release(serial);
    release(vsock); release(platform); release(handle2); release(fh2);
    close(dgram[1]); close(dgram2[1]); close(pipeIn[1]); close(pipeOut[0]);
}

/* ---- the macOS VM ---------------------------------------------------------------------- */

typedef struct { double x, y, w, h; } Rect;

static void mac_vm(void) {
    Expect e;
    id err = NULL;
    write_file(path_in("mac-disk.img"), "disk");
    if (mkdir(path_in("share"), 0755) != 0 && errno != EEXIST) die("mkdir");

    static const char model[] = "fake hardware model";
    id modelData = SEND(id, (id, SEL, const void *, unsigned long), (id)C("NSData"), "dataWithBytes:length:", model, sizeof model);
    id hardwareModel = msg1(alloc_("VZMacHardwareModel"), "initWithDataRepresentation:", modelData);
    check(hardwareModel && bmsg0(hardwareModel, "isSupported"), "VZMacHardwareModel from data, supported");
    id machine = new_("VZMacMachineIdentifier");
    id machineData = msg0(machine, "dataRepresentation");
    id machine2 = msg1(alloc_("VZMacMachineIdentifier"), "initWithDataRepresentation:", machineData);
    check(SEND(unsigned char, (id, SEL, id), machine, "isEqual:", machine2), "VZMacMachineIdentifier round-trips through dataRepresentation");

    const char *auxPath = path_in("aux.img");
    id aux = SEND(id, (id, SEL, id, id, unsigned long, id *), alloc_("VZMacAuxiliaryStorage"),
                  "initCreatingStorageAtURL:hardwareModel:options:error:", file_url(auxPath), hardwareModel, 0UL, &err);
    check(aux != NULL && file_exists(auxPath), "VZMacAuxiliaryStorage creates its file");
    id aux2 = SEND(id, (id, SEL, id, id, unsigned long, id *), alloc_("VZMacAuxiliaryStorage"),
                   "initCreatingStorageAtURL:hardwareModel:options:error:", file_url(auxPath), hardwareModel, 0UL, &err);
    check(aux2 == NULL && err_code(err) == EEXIST, "creating it again without AllowOverwrite fails (code %ld)", err_code(err));
    id aux3 = msg1(alloc_("VZMacAuxiliaryStorage"), "initWithURL:", file_url(auxPath));
    check(aux3 != NULL && contains(utf8(msg0(msg0(aux3, "URL"), "path")), "aux.img"), "VZMacAuxiliaryStorage initWithURL:");

    id platform = new_("VZMacPlatformConfiguration");
    vmsg1(platform, "setHardwareModel:", hardwareModel);
    vmsg1(platform, "setMachineIdentifier:", machine);
    vmsg1(platform, "setAuxiliaryStorage:", aux3);
    id boot = new_("VZMacOSBootLoader");

    id display = SEND(id, (id, SEL, long, long, long), alloc_("VZMacGraphicsDisplayConfiguration"),
                      "initWithWidthInPixels:heightInPixels:pixelsPerInch:", 1920L, 1200L, 80L);
    check(lmsg0(display, "widthInPixels") == 1920 && lmsg0(display, "heightInPixels") == 1200, "display 1920x1200");
    id graphics = new_("VZMacGraphicsDeviceConfiguration");
    vmsg1(graphics, "setDisplays:", array1(display));

    id disk = SEND(id, (id, SEL, id, unsigned char, id *), alloc_("VZDiskImageStorageDeviceAttachment"),
                   "initWithURL:readOnly:error:", file_url(path_in("mac-disk.img")), 0, &err);
    id block = msg1(alloc_("VZVirtioBlockDeviceConfiguration"), "initWithAttachment:", disk);
    id nic = new_("VZVirtioNetworkDeviceConfiguration"); /* no attachment yet */
    id keyboard = new_("VZMacKeyboardConfiguration");
    id trackpad = new_("VZMacTrackpadConfiguration");
    id vsock = new_("VZVirtioSocketDeviceConfiguration");
    id shared = SEND(id, (id, SEL, id, unsigned char), alloc_("VZSharedDirectory"), "initWithURL:readOnly:", file_url(path_in("share")), 1);
    id share = msg1(alloc_("VZSingleDirectoryShare"), "initWithDirectory:", shared);
    id tag = msg0((id)C("VZVirtioFileSystemDeviceConfiguration"), "macOSGuestAutomountTag");
    check(SEND(unsigned char, (id, SEL, id, id *), (id)C("VZVirtioFileSystemDeviceConfiguration"), "validateTag:error:", tag, &err),
          "+validateTag:error: accepts macOSGuestAutomountTag");
    check(!SEND(unsigned char, (id, SEL, id, id *), (id)C("VZVirtioFileSystemDeviceConfiguration"), "validateTag:error:",
                nsstr("a-tag-that-is-far-too-long-to-be-valid-really"), &err),
          "+validateTag:error: rejects a 36+ byte tag");
    id fs = msg1(alloc_("VZVirtioFileSystemDeviceConfiguration"), "initWithTag:", tag);
    vmsg1(fs, "setShare:", share);

    id config = new_("VZVirtualMachineConfiguration");
    vmsg1(config, "setPlatform:", platform);
    vmsg1(config, "setBootLoader:", boot);
    SEND(void, (id, SEL, unsigned long), config, "setCPUCount:", 4UL);
    SEND(void, (id, SEL, uint64_t), config, "setMemorySize:", 4ULL << 30);
    vmsg1(config, "setGraphicsDevices:", array1(graphics));
    vmsg1(config, "setStorageDevices:", array1(block));
    vmsg1(config, "setNetworkDevices:", array1(nic));
    vmsg1(config, "setKeyboards:", array1(keyboard));
    vmsg1(config, "setPointingDevices:", array1(trackpad));
    vmsg1(config, "setSocketDevices:", array1(vsock));
    vmsg1(config, "setDirectorySharingDevices:", array1(fs));
    check(!SEND(unsigned char, (id, SEL, id *), config, "validateWithError:", &err) && err_code(err) == 2,
          "a network device without attachment does not validate (Apple's header rule)");
    pRequireNetworkAttachment(0);
    check(SEND(unsigned char, (id, SEL, id *), config, "validateWithError:", &err), "... unless VZFakeSetRequireNetworkAttachment(0)");
    pRequireNetworkAttachment(1);
    id nat = new_("VZNATNetworkDeviceAttachment");
    vmsg1(nic, "setAttachment:", nat);
    vmsg1(config, "setNetworkDevices:", array1(nic));
    check(SEND(unsigned char, (id, SEL, id *), config, "validateWithError:", &err), "macOS configuration validates");
    check(!SEND(unsigned char, (id, SEL, id *), config, "validateSaveRestoreSupportWithError:", &err) && err_code(err) == 10,
          "macOS configuration with a directory share cannot be saved (code %ld)", err_code(err));

    /* a configuration that does not validate makes initWithConfiguration: raise */
    id bad = new_("VZVirtualMachineConfiguration");
    vmsg1(bad, "setBootLoader:", boot); /* macOS boot loader on the default generic platform */
    int raised = 0;
    @try {
        id vmBad = msg1(alloc_("VZVirtualMachine"), "initWithConfiguration:", bad);
        release(vmBad);
    } @catch (id ex) {
        raised = 1;
    }
    check(raised, "initWithConfiguration: with an invalid configuration raises");
    release(bad);

    id vm = msg1(alloc_("VZVirtualMachine"), "initWithConfiguration:", config);
    id nics = msg0(vm, "networkDevices");
    check(count_of(nics) == 1 && is_kind(msg0(at_index(nics, 0), "attachment"), "VZNATNetworkDeviceAttachment"), "network device with the NAT attachment");
    vmsg1(at_index(nics, 0), "setAttachment:", NULL);
    check(msg0(at_index(nics, 0), "attachment") == NULL, "unplugged at run time: attachment nil");
    check(run_op(vm, "startWithCompletionHandler:", &e) == 0 && state_of(vm) == 1, "macOS VM starts");
    check(run_op(vm, "pauseWithCompletionHandler:", &e) == 0 && state_of(vm) == 2, "macOS VM pauses");
    check(run_url_op(vm, "saveMachineStateToURL:completionHandler:", file_url(path_in("mac.vzstate")), &e) == 11 &&
              !file_exists(path_in("mac.vzstate")) && state_of(vm) == 2,
          "save with a directory share: VZErrorSave (11), no file, still Paused");

    /* the view */
    Rect frame = { 0, 0, 1920, 1200 };
    id view = SEND(id, (id, SEL, Rect), alloc_("VZVirtualMachineView"), "initWithFrame:", frame);
    vmsg1(view, "setVirtualMachine:", vm);
    Rect back = SEND(Rect, (id, SEL), view, "frame");
    check(msg0(view, "virtualMachine") == vm && back.w == 1920 && back.h == 1200, "VZVirtualMachineView keeps its VM and frame");
    release(view);

    check(run_op(vm, "stopWithCompletionHandler:", &e) == 0 && state_of(vm) == 0, "macOS VM stops from Paused");

    release(vm);
    release(config); release(hardwareModel); release(machine); release(machine2); release(aux); release(aux3);
    release(platform); release(boot); release(display); release(graphics); release(disk); release(block); release(nic); release(nat);
    release(keyboard); release(trackpad); release(vsock); release(shared); release(share); release(fs);
}

/* ---- exceptions, threads, ownership ---------------------------------------------------- */

static void exceptions(void) {
    int raised = 0;
    @try {
        id url = msg1((id)C("NSURL"), "URLWithString:", nsstr("https://example.invalid/vmlinux"));
        id boot = msg1(alloc_("VZLinuxBootLoader"), "initWithKernelURL:", url);
        release(boot);
    } @catch (id ex) {
        raised = 1;
    }
    check(raised && contains(pEventLog(), "exception NSInvalidArgumentException"), "initWithKernelURL: with a non-file URL raises NSInvalidArgumentException");
}

static void *foreign_thread(void *arg) {
    /* What a .NET thread-pool thread does: its own pool around calls into the framework. */
    id pool = new_("NSAutoreleasePool");
    id config = new_("VZVirtualMachineConfiguration");
    id devices = msg0(config, "storageDevices");
    *(int *)arg = devices != NULL && count_of(devices) == 0;
    release(config);
    vmsg0(pool, "drain");
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: %s /path/to/libVirtualization.so [--dump]\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_LAZY | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "smoke: %s\n", dlerror()); return 2; }
    if (argc > 2 && !strcmp(argv[2], "--dump")) return dump_encodings();

    pCallLog = sym(lib, "VZFakeCallLog");
    pEventLog = sym(lib, "VZFakeEventLog");
    pReset = sym(lib, "VZFakeReset");
    pFailNext = sym(lib, "VZFakeFailNext");
    pSetDelayMs = sym(lib, "VZFakeSetDelayMs");
    pWaitIdle = sym(lib, "VZFakeWaitIdle");
    pLiveObjects = sym(lib, "VZFakeLiveObjects");
    pGuestConnect = sym(lib, "VZFakeGuestConnect");
    pGuestListen = sym(lib, "VZFakeGuestListen");
    pGuestAccept = sym(lib, "VZFakeGuestAccept");
    pGuestStop = sym(lib, "VZFakeGuestStop");
    pHonorsStop = sym(lib, "VZFakeSetGuestHonorsStopRequest");
    pGuestError = sym(lib, "VZFakeGuestError");
    pDisconnectNetwork = sym(lib, "VZFakeDisconnectNetwork");
    pRequireNetworkAttachment = sym(lib, "VZFakeSetRequireNetworkAttachment");
    check(dlsym(lib, "VZErrorDomain") != NULL, "VZErrorDomain is exported");

    /* Block isa from the blocks runtime the fake uses (already loaded as its dependency). */
    void *blocks = dlopen("libBlocksRuntime.so.0", RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    if (!blocks) die("libBlocksRuntime.so.0 is not loaded by the fake");
    g_stackBlockIsa = sym(blocks, "_NSConcreteStackBlock");

    snprintf(g_dir, sizeof g_dir, "/tmp/vzfake-smoke.XXXXXX");
    if (!mkdtemp(g_dir)) die("mkdtemp");

    pReset();
    id pool = new_("NSAutoreleasePool");
    linux_vm();
    mac_vm();
    exceptions();
    vmsg0(pool, "drain");

    int foreignOk = 0;
    pthread_t t;
    pthread_create(&t, NULL, foreign_thread, &foreignOk);
    pthread_join(t, NULL);
    check(foreignOk, "calls from a foreign thread with its own autorelease pool work");

    pWaitIdle(2000);
    long live = pLiveObjects(NULL);
    check(live == 0, "no fake object left alive after everything was released (%ld live)", live);
    if (live) { /* which classes */
        int n = objc_getClassList(NULL, 0);
        Class *classes = calloc((size_t)n, sizeof *classes);
        n = objc_getClassList(classes, n);
        for (int i = 0; i < n; i++) {
            long k = pLiveObjects(class_getName(classes[i]));
            if (k) fprintf(stderr, "  live %s: %ld\n", class_getName(classes[i]), k);
        }
        free(classes);
    }

    pReset();
    check(pCallLog()[0] == 0 && pEventLog()[0] == 0, "VZFakeReset clears the logs");

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "smoke: could not remove %s\n", g_dir);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
