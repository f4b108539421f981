/*
 * A fake of Apple's Virtualization.framework for Linux tests (libVirtualization.so).
 *
 * Same class names, selectors and argument types as Apple's public headers (see README.md for
 * the list and where each was confirmed), NSObject-derived on GNUstep Foundation and GCC's
 * Objective-C runtime (libobjc.so.4), built with clang -fobjc-runtime=gcc -fblocks against
 * libBlocksRuntime. Manual reference counting throughout, following Cocoa's rules:
 *   - alloc/new/copy/init... return objects the caller owns (+1);
 *   - every other method returns objects the caller does not own (retained + autoreleased, as
 *     Apple's atomic properties do), so callers need an autorelease pool;
 *   - `strong`/`copy` properties retain/copy, `weak` delegates are NOT retained (the fake has no
 *     zeroing weak references: keep the delegate alive and clear it before it dies);
 *   - completion handlers are Block_copy'd and run later on the fake's worker thread, inside an
 *     autorelease pool, then Block_release'd; delegate methods run there too.
 * Every call into the Apple API is appended to a call log (VZFake.h has the C test API).
 *
 * Ownership convention inside this file: every object instance variable is owned (released in
 * dealloc, retained by copies) unless its name ends in "Unretained".
 */
#import <Foundation/Foundation.h>
#include <Block.h>
#include <objc/runtime.h>
#include <errno.h>
#include <fcntl.h>
#include <net/ethernet.h>
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

#define VZ_EXPORT_C __attribute__((visibility("default")))

/* Apple's VZErrorCode values (VZError.h). */
enum {
    VZErrorInternal = 1,
    VZErrorInvalidVirtualMachineConfiguration = 2,
    VZErrorInvalidVirtualMachineState = 3,
    VZErrorInvalidVirtualMachineStateTransition = 4,
    VZErrorInvalidDiskImage = 5,
    VZErrorVirtualMachineLimitExceeded = 6,
    VZErrorNetworkError = 7,
    VZErrorOutOfDiskSpace = 8,
    VZErrorOperationCancelled = 9,
    VZErrorNotSupported = 10,
    VZErrorSave = 11,
    VZErrorRestore = 12,
};

/* Apple's VZVirtualMachineState values (VZVirtualMachine.h). */
typedef NSInteger VZVirtualMachineState;
enum {
    VZVirtualMachineStateStopped = 0,
    VZVirtualMachineStateRunning = 1,
    VZVirtualMachineStatePaused = 2,
    VZVirtualMachineStateError = 3,
    VZVirtualMachineStateStarting = 4,
    VZVirtualMachineStatePausing = 5,
    VZVirtualMachineStateResuming = 6,
    VZVirtualMachineStateStopping = 7,
    VZVirtualMachineStateSaving = 8,
    VZVirtualMachineStateRestoring = 9,
};

typedef NSUInteger VZMacAuxiliaryStorageInitializationOptions;
enum { VZMacAuxiliaryStorageInitializationOptionAllowOverwrite = 1 << 0 };

typedef struct ether_addr ether_addr_t; /* Apple: struct ether_addr { u_char octet[6]; } */

/* Apple exports this NSString constant; so does the fake (dlsym "VZErrorDomain"). */
NSString *const VZErrorDomain = @"VZErrorDomain";

/* Limits the fake reports through the class properties of VZVirtualMachineConfiguration. Apple's
 * depend on the host; these are the fake's own. */
#define VZ_FAKE_MIN_MEMORY (128ULL << 20)
#define VZ_FAKE_MAX_MEMORY (64ULL << 30)
#define VZ_FAKE_MIN_CPUS 1UL
#define VZ_FAKE_MAX_CPUS 32UL
#define VZ_FAKE_AUTOMOUNT_TAG @"com.apple.virtio-fs.automount"

/* ------------------------------------------------------------------------------------------
 * Logs, failure injection, knobs
 * ------------------------------------------------------------------------------------------ */

typedef struct { char *data; size_t len, cap; } vz_buf;

static pthread_mutex_t g_logMu = PTHREAD_MUTEX_INITIALIZER;
static vz_buf g_calls, g_events;
static char *g_callSnapshot, *g_eventSnapshot;

typedef struct vz_failure { char *selector; long code; struct vz_failure *next; } vz_failure;
static vz_failure *g_failures;

static volatile int g_delayMs = 10;
static volatile int g_guestHonorsStop = 1;
static volatile int g_requireNetworkAttachment = 1;
static __thread int tl_quiet; /* >0 while the fake calls its own public methods */

static void vz_buf_append(vz_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void vz_record(id receiver, SEL cmd) {
    if (tl_quiet) return;
    Class cls = object_getClass(receiver);
    BOOL isClass = class_isMetaClass(cls);
    const char *name = isClass ? class_getName((Class)receiver) : class_getName(cls);
    char line[512];
    int n = snprintf(line, sizeof line, "%c[%s %s]\n", isClass ? '+' : '-', name, sel_getName(cmd));
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    pthread_mutex_lock(&g_logMu);
    vz_buf_append(&g_calls, line, (size_t)n);
    pthread_mutex_unlock(&g_logMu);
}
#define VZ_RECORD() vz_record(self, _cmd)

static void vz_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vz_event(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    pthread_mutex_lock(&g_logMu);
    vz_buf_append(&g_events, line, (size_t)n);
    pthread_mutex_unlock(&g_logMu);
}

/* Takes the oldest failure queued for this selector. */
static BOOL vz_take_failure(SEL cmd, long *code) {
    const char *name = sel_getName(cmd);
    BOOL found = NO;
    pthread_mutex_lock(&g_logMu);
    for (vz_failure **p = &g_failures; *p; p = &(*p)->next) {
        if (strcmp((*p)->selector, name) == 0) {
            vz_failure *f = *p;
            *p = f->next;
            *code = f->code;
            free(f->selector);
            free(f);
            found = YES;
            break;
        }
    }
    pthread_mutex_unlock(&g_logMu);
    return found;
}

/* ------------------------------------------------------------------------------------------
 * Live object counts
 * ------------------------------------------------------------------------------------------ */

#define VZ_MAX_CLASSES 128
static pthread_mutex_t g_liveMu = PTHREAD_MUTEX_INITIALIZER;
static struct { Class cls; long count; } g_live[VZ_MAX_CLASSES];
static int g_liveClasses;

static void vz_live_adjust(Class cls, long delta) {
    pthread_mutex_lock(&g_liveMu);
    int i;
    for (i = 0; i < g_liveClasses; i++)
        if (g_live[i].cls == cls) break;
    if (i == g_liveClasses && g_liveClasses < VZ_MAX_CLASSES) {
        g_live[i].cls = cls;
        g_live[i].count = 0;
        g_liveClasses++;
    }
    if (i < g_liveClasses) g_live[i].count += delta;
    pthread_mutex_unlock(&g_liveMu);
}

/* ------------------------------------------------------------------------------------------
 * Ownership helpers working on instance variables (see the convention at the top)
 * ------------------------------------------------------------------------------------------ */

static BOOL vz_ivar_is_owned_object(Ivar iv) {
    const char *type = ivar_getTypeEncoding(iv);
    const char *name = ivar_getName(iv);
    size_t n = strlen(name), k = strlen("Unretained");
    if (type[0] != '@') return NO;
    return !(n >= k && strcmp(name + n - k, "Unretained") == 0);
}

static void vz_release_owned_ivars(id obj) {
    Class root = [NSObject class];
    for (Class c = object_getClass(obj); c && c != root; c = class_getSuperclass(c)) {
        unsigned n = 0;
        Ivar *ivars = class_copyIvarList(c, &n);
        for (unsigned i = 0; i < n; i++) {
            if (!vz_ivar_is_owned_object(ivars[i])) continue;
            id *slot = (id *)((char *)obj + ivar_getOffset(ivars[i]));
            id value = *slot;
            *slot = nil;
            [value release];
        }
        free(ivars);
    }
}

/* A new instance of obj's class with the same instance variables (owned objects retained). */
static id vz_clone(id obj, NSZone *zone) {
    Class cls = object_getClass(obj);
    id copy = [cls allocWithZone:zone];
    Class root = [NSObject class];
    for (Class c = cls; c && c != root; c = class_getSuperclass(c)) {
        unsigned n = 0;
        Ivar *ivars = class_copyIvarList(c, &n);
        for (unsigned i = 0; i < n; i++) {
            ptrdiff_t off = ivar_getOffset(ivars[i]);
            int size = objc_sizeof_type(ivar_getTypeEncoding(ivars[i]));
            memcpy((char *)copy + off, (char *)obj + off, (size_t)size);
            if (vz_ivar_is_owned_object(ivars[i])) [*(id *)((char *)copy + off) retain];
        }
        free(ivars);
    }
    return copy;
}

static id vz_quiet_copy(id obj) { /* +1, not logged */
    tl_quiet++;
    id c = [obj copy];
    tl_quiet--;
    return c;
}

static id vz_ret(id obj) { return [[obj retain] autorelease]; }

static void vz_set_retained(id *slot, id value) {
    [value retain];
    id old = *slot;
    *slot = value;
    [old release];
}

static void vz_set_copied(id *slot, id value) {
    id c = vz_quiet_copy(value);
    id old = *slot;
    *slot = c;
    [old release];
}

static NSArray *vz_array_arg(NSArray *value) { return value ? value : [NSArray array]; }

/* ------------------------------------------------------------------------------------------
 * Errors and exceptions
 * ------------------------------------------------------------------------------------------ */

static NSError *vz_error_in(NSString *domain, long code, NSString *format, ...) NS_FORMAT_FUNCTION(3, 4);
static NSError *vz_error_in(NSString *domain, long code, NSString *format, ...) {
    va_list ap;
    va_start(ap, format);
    NSString *message = [[[NSString alloc] initWithFormat:format arguments:ap] autorelease];
    va_end(ap);
    NSDictionary *info = [NSDictionary dictionaryWithObjectsAndKeys:message, NSLocalizedDescriptionKey, nil];
    return [NSError errorWithDomain:domain code:code userInfo:info];
}
#define vz_error(code, ...) vz_error_in(VZErrorDomain, (code), __VA_ARGS__)

static NSError *vz_injected_error(SEL cmd, long code) {
    return vz_error(code, @"Injected failure of %s (VZFakeFailNext).", sel_getName(cmd));
}

static BOOL vz_fail(NSError **out, NSError *error) {
    if (out) *out = error;
    return NO;
}

static void vz_raise(id receiver, SEL cmd, NSString *format, ...) NS_FORMAT_FUNCTION(3, 4);
static void vz_raise(id receiver, SEL cmd, NSString *format, ...) {
    va_list ap;
    va_start(ap, format);
    NSString *detail = [[[NSString alloc] initWithFormat:format arguments:ap] autorelease];
    va_end(ap);
    Class cls = object_getClass(receiver);
    BOOL isClass = class_isMetaClass(cls);
    NSString *reason = [NSString stringWithFormat:@"*** %c[%s %s]: %@", isClass ? '+' : '-',
                                                  isClass ? class_getName((Class)receiver) : class_getName(cls),
                                                  sel_getName(cmd), detail];
    vz_event("exception NSInvalidArgumentException: %s", [reason UTF8String]);
    [NSException raise:NSInvalidArgumentException format:@"%@", reason];
}

/* Apple raises NSInvalidArgumentException for a URL that is not a file URL (seen for
 * -[VZLinuxBootLoader initWithKernelURL:]); the fake does so wherever a file URL is required. */
static void vz_require_file_url(id receiver, SEL cmd, NSURL *url) {
    if (!url || ![url isKindOfClass:[NSURL class]] || ![url isFileURL])
        vz_raise(receiver, cmd, @"The URL %@ is not a file URL", url);
}

static void vz_require_object(id receiver, SEL cmd, id value, const char *what) {
    if (!value) vz_raise(receiver, cmd, @"%s must not be nil", what);
}

static const char *vz_path(NSURL *url) { return [[url path] fileSystemRepresentation]; }

static NSString *vz_hex(NSData *data) {
    NSMutableString *s = [NSMutableString string];
    const unsigned char *p = [data bytes];
    for (NSUInteger i = 0; i < [data length]; i++) [s appendFormat:@"%02x", p[i]];
    return s;
}

/* ------------------------------------------------------------------------------------------
 * The worker thread: a serial queue of blocks, each run at its due time inside an
 * autorelease pool. Stands in for the VM's dispatch queue (Debian 12 has no libdispatch).
 * ------------------------------------------------------------------------------------------ */

typedef void (^vz_job_block)(void);
typedef struct vz_job { uint64_t due, seq; vz_job_block block; struct vz_job *next; } vz_job;

static pthread_mutex_t g_qMu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_qWake, g_qIdle;
static vz_job *g_qHead;
static int g_qRunning, g_qStarted;
static uint64_t g_qSeq;
static pthread_t g_qThread;

static uint64_t vz_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct timespec vz_abs_time(uint64_t ns) {
    struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
    return ts;
}

static BOOL vz_on_worker(void) {
    pthread_mutex_lock(&g_qMu);
    BOOL on = g_qStarted && pthread_equal(pthread_self(), g_qThread);
    pthread_mutex_unlock(&g_qMu);
    return on;
}

static void *vz_worker_main(void *arg) {
    (void)arg;
    GSRegisterCurrentThread();
    pthread_mutex_lock(&g_qMu);
    for (;;) {
        while (!g_qHead || g_qHead->due > vz_now_ns()) {
            if (!g_qHead) {
                pthread_cond_broadcast(&g_qIdle);
                pthread_cond_wait(&g_qWake, &g_qMu);
            } else {
                struct timespec until = vz_abs_time(g_qHead->due);
                pthread_cond_timedwait(&g_qWake, &g_qMu, &until);
            }
        }
        vz_job *job = g_qHead;
        g_qHead = job->next;
        g_qRunning = 1;
        pthread_mutex_unlock(&g_qMu);

        NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
        @try {
            job->block();
        } @catch (NSException *e) {
            vz_event("exception on worker thread: %s: %s", [[e name] UTF8String], [[e reason] UTF8String]);
        }
        [pool drain];
        Block_release(job->block);
        free(job);

        pthread_mutex_lock(&g_qMu);
        g_qRunning = 0;
    }
    return NULL;
}

static void vz_init_queue_locked(void) {
    if (g_qStarted) return;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g_qWake, &attr);
    pthread_cond_init(&g_qIdle, &attr);
    pthread_condattr_destroy(&attr);
    pthread_attr_t tattr;
    pthread_attr_init(&tattr);
    pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&g_qThread, &tattr, vz_worker_main, NULL) != 0) abort();
    pthread_attr_destroy(&tattr);
    g_qStarted = 1;
}

/* Runs `block` on the worker thread `delayMs` from now (FIFO among equal times). */
static void vz_later(int delayMs, vz_job_block block) {
    vz_job *job = calloc(1, sizeof *job);
    if (!job) abort();
    job->block = Block_copy(block);
    pthread_mutex_lock(&g_qMu);
    vz_init_queue_locked();
    job->due = vz_now_ns() + (uint64_t)(delayMs < 0 ? 0 : delayMs) * 1000000ULL;
    job->seq = g_qSeq++;
    vz_job **p = &g_qHead;
    while (*p && ((*p)->due < job->due || ((*p)->due == job->due && (*p)->seq < job->seq))) p = &(*p)->next;
    job->next = *p;
    *p = job;
    pthread_cond_signal(&g_qWake);
    pthread_mutex_unlock(&g_qMu);
}

/* ------------------------------------------------------------------------------------------
 * Protocols (same names and selectors as Apple's)
 * ------------------------------------------------------------------------------------------ */

@class VZVirtualMachine, VZNetworkDevice, VZVirtioSocketListener, VZVirtioSocketConnection, VZVirtioSocketDevice;

@protocol VZVirtualMachineDelegate <NSObject>
@optional
- (void)guestDidStopVirtualMachine:(VZVirtualMachine *)virtualMachine;
- (void)virtualMachine:(VZVirtualMachine *)virtualMachine didStopWithError:(NSError *)error;
- (void)virtualMachine:(VZVirtualMachine *)virtualMachine networkDevice:(VZNetworkDevice *)networkDevice attachmentWasDisconnectedWithError:(NSError *)error;
@end

@protocol VZVirtioSocketListenerDelegate <NSObject>
@optional
- (BOOL)listener:(VZVirtioSocketListener *)listener shouldAcceptNewConnection:(VZVirtioSocketConnection *)connection fromSocketDevice:(VZVirtioSocketDevice *)socketDevice;
@end

/* Root classes (direct NSObject subclasses) count their instances and release owned ivars.
 * A root class with its own dealloc uses VZ_ROOT_ALLOC and ends its dealloc with VZ_ROOT_DEALLOC_TAIL. */
#define VZ_ROOT_ALLOC                                                                 \
    +(id)allocWithZone : (NSZone *)zone {                                            \
        id obj = [super allocWithZone:zone];                                          \
        if (obj) vz_live_adjust(self, 1);                                             \
        return obj;                                                                   \
    }
#define VZ_ROOT_DEALLOC_TAIL                                                          \
    vz_release_owned_ivars(self);                                                     \
    vz_live_adjust(object_getClass(self), -1);                                        \
    [super dealloc];
#define VZ_ROOT_METHODS                                                               \
    VZ_ROOT_ALLOC                                                                     \
    -(void)dealloc {                                                                  \
        VZ_ROOT_DEALLOC_TAIL                                                          \
    }

#define VZ_COPYING_METHODS                                                            \
    -(id)copyWithZone : (NSZone *)zone {                                             \
        VZ_RECORD();                                                                  \
        return vz_clone(self, zone);                                                  \
    }

/* ------------------------------------------------------------------------------------------
 * Boot loaders and platforms
 * ------------------------------------------------------------------------------------------ */

@interface VZBootLoader : NSObject <NSCopying>
@end
@implementation VZBootLoader
VZ_ROOT_METHODS
VZ_COPYING_METHODS
@end

@interface VZLinuxBootLoader : VZBootLoader {
@public
    NSURL *_kernelURL;
    NSURL *_initialRamdiskURL;
    NSString *_commandLine;
}
@end
@implementation VZLinuxBootLoader
- (id)initWithKernelURL:(NSURL *)kernelURL {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    @try {
        vz_require_file_url(self, _cmd, kernelURL);
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    _kernelURL = vz_quiet_copy(kernelURL);
    _commandLine = @"";
    return self;
}
- (NSURL *)kernelURL { VZ_RECORD(); return vz_ret(_kernelURL); }
- (void)setKernelURL:(NSURL *)url {
    VZ_RECORD();
    vz_require_file_url(self, _cmd, url);
    vz_set_copied(&_kernelURL, url);
}
- (NSString *)commandLine { VZ_RECORD(); return vz_ret(_commandLine); }
- (void)setCommandLine:(NSString *)commandLine { VZ_RECORD(); vz_set_copied(&_commandLine, commandLine ? commandLine : @""); }
- (NSURL *)initialRamdiskURL { VZ_RECORD(); return vz_ret(_initialRamdiskURL); }
- (void)setInitialRamdiskURL:(NSURL *)url {
    VZ_RECORD();
    if (url) vz_require_file_url(self, _cmd, url);
    vz_set_copied(&_initialRamdiskURL, url);
}
@end

@interface VZMacOSBootLoader : VZBootLoader
@end
@implementation VZMacOSBootLoader
- (id)init { VZ_RECORD(); return [super init]; }
@end

@interface VZPlatformConfiguration : NSObject <NSCopying>
@end
@implementation VZPlatformConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
@end

@interface VZGenericPlatformConfiguration : VZPlatformConfiguration
@end
@implementation VZGenericPlatformConfiguration
- (id)init { VZ_RECORD(); return [super init]; }
@end

@interface VZMacHardwareModel : NSObject <NSCopying> {
@public
    NSData *_dataRepresentation;
}
@end
@implementation VZMacHardwareModel
VZ_ROOT_METHODS
VZ_COPYING_METHODS
/* Any non-empty data is a hardware model; data starting with "unsupported" is one the host does
 * not support (isSupported NO, and a configuration using it does not validate). */
- (id)initWithDataRepresentation:(NSData *)data {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    if (![data isKindOfClass:[NSData class]] || [data length] == 0) {
        [self release];
        return nil;
    }
    _dataRepresentation = [data copy];
    return self;
}
- (NSData *)dataRepresentation { VZ_RECORD(); return vz_ret(_dataRepresentation); }
- (BOOL)_vzSupported {
    static const char prefix[] = "unsupported";
    return !([_dataRepresentation length] >= sizeof prefix - 1 &&
             memcmp([_dataRepresentation bytes], prefix, sizeof prefix - 1) == 0);
}
- (BOOL)isSupported { VZ_RECORD(); return [self _vzSupported]; }
@end

@interface VZMacMachineIdentifier : NSObject <NSCopying> {
@public
    NSData *_dataRepresentation;
}
@end
@implementation VZMacMachineIdentifier
VZ_ROOT_METHODS
VZ_COPYING_METHODS
- (id)init {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    unsigned char bytes[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, bytes, sizeof bytes) != (ssize_t)sizeof bytes) {
        for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)rand();
    }
    if (fd >= 0) close(fd);
    _dataRepresentation = [[NSData alloc] initWithBytes:bytes length:sizeof bytes];
    return self;
}
- (id)initWithDataRepresentation:(NSData *)data {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    if (![data isKindOfClass:[NSData class]] || [data length] == 0) {
        [self release];
        return nil;
    }
    _dataRepresentation = [data copy];
    return self;
}
- (NSData *)dataRepresentation { VZ_RECORD(); return vz_ret(_dataRepresentation); }
- (BOOL)isEqual:(id)other {
    return [other isKindOfClass:[VZMacMachineIdentifier class]] &&
           [_dataRepresentation isEqual:((VZMacMachineIdentifier *)other)->_dataRepresentation];
}
- (NSUInteger)hash { return [_dataRepresentation hash]; }
@end

@interface VZMacAuxiliaryStorage : NSObject {
@public
    NSURL *_URL;
}
@end
@implementation VZMacAuxiliaryStorage
VZ_ROOT_METHODS
- (id)_vzInitWithURL:(NSURL *)url cmd:(SEL)cmd {
    if (!(self = [super init])) return nil;
    @try {
        vz_require_file_url(self, cmd, url);
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    _URL = vz_quiet_copy(url);
    return self;
}
- (id)initWithContentsOfURL:(NSURL *)url { VZ_RECORD(); return [self _vzInitWithURL:url cmd:_cmd]; }
- (id)initWithURL:(NSURL *)url { VZ_RECORD(); return [self _vzInitWithURL:url cmd:_cmd]; }
- (id)initCreatingStorageAtURL:(NSURL *)url
                 hardwareModel:(VZMacHardwareModel *)hardwareModel
                       options:(VZMacAuxiliaryStorageInitializationOptions)options
                         error:(NSError **)error {
    VZ_RECORD();
    if (!(self = [self _vzInitWithURL:url cmd:_cmd])) return nil;
    long code;
    NSError *failure = nil;
    if (vz_take_failure(_cmd, &code)) {
        failure = vz_injected_error(_cmd, code);
    } else if (!hardwareModel) {
        failure = vz_error(VZErrorInvalidVirtualMachineConfiguration, @"A hardware model is required.");
    } else {
        int flags = O_WRONLY | O_CREAT | O_CLOEXEC |
                    ((options & VZMacAuxiliaryStorageInitializationOptionAllowOverwrite) ? O_TRUNC : O_EXCL);
        int fd = open(vz_path(url), flags, 0644);
        if (fd < 0) {
            failure = vz_error_in(NSPOSIXErrorDomain, errno, @"Cannot create the auxiliary storage at %@: %s", [url path], strerror(errno));
        } else {
            NSString *text = [NSString stringWithFormat:@"VZFakeAuxiliaryStorage 1\nhardwareModel=%@\n",
                                                        vz_hex(hardwareModel->_dataRepresentation)];
            const char *bytes = [text UTF8String];
            ssize_t written = write(fd, bytes, strlen(bytes));
            close(fd);
            if (written != (ssize_t)strlen(bytes))
                failure = vz_error_in(NSPOSIXErrorDomain, EIO, @"Cannot write the auxiliary storage at %@", [url path]);
        }
    }
    if (failure) {
        [self release];
        vz_fail(error, failure);
        return nil;
    }
    return self;
}
- (NSURL *)URL { VZ_RECORD(); return vz_ret(_URL); }
@end

@interface VZMacPlatformConfiguration : VZPlatformConfiguration {
@public
    VZMacHardwareModel *_hardwareModel;
    VZMacMachineIdentifier *_machineIdentifier;
    VZMacAuxiliaryStorage *_auxiliaryStorage;
}
@end
@implementation VZMacPlatformConfiguration
- (id)init {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    tl_quiet++;
    _machineIdentifier = [[VZMacMachineIdentifier alloc] init];
    tl_quiet--;
    return self;
}
- (VZMacHardwareModel *)hardwareModel { VZ_RECORD(); return vz_ret(_hardwareModel); }
- (void)setHardwareModel:(VZMacHardwareModel *)model { VZ_RECORD(); vz_set_copied(&_hardwareModel, model); }
- (VZMacMachineIdentifier *)machineIdentifier { VZ_RECORD(); return vz_ret(_machineIdentifier); }
- (void)setMachineIdentifier:(VZMacMachineIdentifier *)identifier { VZ_RECORD(); vz_set_copied(&_machineIdentifier, identifier); }
- (VZMacAuxiliaryStorage *)auxiliaryStorage { VZ_RECORD(); return vz_ret(_auxiliaryStorage); }
- (void)setAuxiliaryStorage:(VZMacAuxiliaryStorage *)storage { VZ_RECORD(); vz_set_retained(&_auxiliaryStorage, storage); }
@end

/* ------------------------------------------------------------------------------------------
 * Graphics, keyboards, pointing devices
 * ------------------------------------------------------------------------------------------ */

@interface VZGraphicsDeviceConfiguration : NSObject <NSCopying>
@end
@implementation VZGraphicsDeviceConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
@end

@interface VZMacGraphicsDisplayConfiguration : NSObject <NSCopying> {
@public
    NSInteger _widthInPixels, _heightInPixels, _pixelsPerInch;
}
@end
@implementation VZMacGraphicsDisplayConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
- (id)initWithWidthInPixels:(NSInteger)width heightInPixels:(NSInteger)height pixelsPerInch:(NSInteger)ppi {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    _widthInPixels = width;
    _heightInPixels = height;
    _pixelsPerInch = ppi;
    return self;
}
- (NSInteger)widthInPixels { VZ_RECORD(); return _widthInPixels; }
- (void)setWidthInPixels:(NSInteger)v { VZ_RECORD(); _widthInPixels = v; }
- (NSInteger)heightInPixels { VZ_RECORD(); return _heightInPixels; }
- (void)setHeightInPixels:(NSInteger)v { VZ_RECORD(); _heightInPixels = v; }
- (NSInteger)pixelsPerInch { VZ_RECORD(); return _pixelsPerInch; }
- (void)setPixelsPerInch:(NSInteger)v { VZ_RECORD(); _pixelsPerInch = v; }
@end

@interface VZMacGraphicsDeviceConfiguration : VZGraphicsDeviceConfiguration {
@public
    NSArray *_displays;
}
@end
@implementation VZMacGraphicsDeviceConfiguration
- (id)init {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    _displays = [[NSArray alloc] init];
    return self;
}
- (NSArray *)displays { VZ_RECORD(); return vz_ret(_displays); }
- (void)setDisplays:(NSArray *)displays { VZ_RECORD(); vz_set_copied(&_displays, vz_array_arg(displays)); }
@end

@interface VZKeyboardConfiguration : NSObject <NSCopying>
@end
@implementation VZKeyboardConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
@end

@interface VZMacKeyboardConfiguration : VZKeyboardConfiguration
@end
@implementation VZMacKeyboardConfiguration
- (id)init { VZ_RECORD(); return [super init]; }
@end

@interface VZPointingDeviceConfiguration : NSObject <NSCopying>
@end
@implementation VZPointingDeviceConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
@end

@interface VZMacTrackpadConfiguration : VZPointingDeviceConfiguration
@end
@implementation VZMacTrackpadConfiguration
- (id)init { VZ_RECORD(); return [super init]; }
@end

/* ------------------------------------------------------------------------------------------
 * Storage
 * ------------------------------------------------------------------------------------------ */

@interface VZStorageDeviceAttachment : NSObject
@end
@implementation VZStorageDeviceAttachment
VZ_ROOT_METHODS
@end

@interface VZDiskImageStorageDeviceAttachment : VZStorageDeviceAttachment {
@public
    NSURL *_URL;
    BOOL _readOnly;
}
@end
@implementation VZDiskImageStorageDeviceAttachment
/* Fails (nil + error) when the file cannot be opened; the error is NSPOSIXErrorDomain/errno. */
- (id)initWithURL:(NSURL *)url readOnly:(BOOL)readOnly error:(NSError **)error {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    @try {
        vz_require_file_url(self, _cmd, url);
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    long code;
    NSError *failure = nil;
    if (vz_take_failure(_cmd, &code)) {
        failure = vz_injected_error(_cmd, code);
    } else {
        int fd = open(vz_path(url), (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (fd < 0)
            failure = vz_error_in(NSPOSIXErrorDomain, errno, @"Cannot open the disk image %@: %s", [url path], strerror(errno));
        else
            close(fd);
    }
    if (failure) {
        [self release];
        vz_fail(error, failure);
        return nil;
    }
    _URL = vz_quiet_copy(url);
    _readOnly = readOnly;
    return self;
}
- (NSURL *)URL { VZ_RECORD(); return vz_ret(_URL); }
- (BOOL)isReadOnly { VZ_RECORD(); return _readOnly; }
@end

@interface VZStorageDeviceConfiguration : NSObject <NSCopying> {
@public
    VZStorageDeviceAttachment *_attachment;
}
@end
@implementation VZStorageDeviceConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
- (VZStorageDeviceAttachment *)attachment { VZ_RECORD(); return vz_ret(_attachment); }
@end

@interface VZVirtioBlockDeviceConfiguration : VZStorageDeviceConfiguration
@end
@implementation VZVirtioBlockDeviceConfiguration
- (id)initWithAttachment:(VZStorageDeviceAttachment *)attachment {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    @try {
        vz_require_object(self, _cmd, attachment, "attachment");
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    _attachment = [attachment retain];
    return self;
}
@end

/* ------------------------------------------------------------------------------------------
 * Network
 * ------------------------------------------------------------------------------------------ */

@interface VZMACAddress : NSObject <NSCopying> {
@public
    unsigned char _bytes[6];
}
@end
@implementation VZMACAddress
VZ_ROOT_METHODS
VZ_COPYING_METHODS
- (id)initWithEthernetAddress:(ether_addr_t)address {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    memcpy(_bytes, &address, 6);
    return self;
}
- (id)initWithString:(NSString *)string {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    unsigned v[6];
    char tail;
    const char *s = [string isKindOfClass:[NSString class]] ? [string UTF8String] : "";
    if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6) {
        [self release];
        return nil;
    }
    for (int i = 0; i < 6; i++) _bytes[i] = (unsigned char)v[i];
    return self;
}
+ (id)randomLocallyAdministeredAddress {
    VZ_RECORD();
    VZMACAddress *a = [[self alloc] init];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, a->_bytes, 6) != 6)
        for (int i = 0; i < 6; i++) a->_bytes[i] = (unsigned char)rand();
    if (fd >= 0) close(fd);
    a->_bytes[0] = (unsigned char)((a->_bytes[0] | 0x02) & ~0x01); /* locally administered, unicast */
    return [a autorelease];
}
- (ether_addr_t)ethernetAddress {
    VZ_RECORD();
    ether_addr_t a;
    memcpy(&a, _bytes, 6);
    return a;
}
- (NSString *)string {
    VZ_RECORD();
    return [NSString stringWithFormat:@"%02x:%02x:%02x:%02x:%02x:%02x", _bytes[0], _bytes[1], _bytes[2], _bytes[3], _bytes[4], _bytes[5]];
}
- (BOOL)isBroadcastAddress {
    VZ_RECORD();
    for (int i = 0; i < 6; i++)
        if (_bytes[i] != 0xff) return NO;
    return YES;
}
- (BOOL)isMulticastAddress { VZ_RECORD(); return (_bytes[0] & 0x01) != 0; }
- (BOOL)isUnicastAddress { VZ_RECORD(); return (_bytes[0] & 0x01) == 0; }
- (BOOL)isLocallyAdministeredAddress { VZ_RECORD(); return (_bytes[0] & 0x02) != 0; }
- (BOOL)isUniversallyAdministeredAddress { VZ_RECORD(); return (_bytes[0] & 0x02) == 0; }
- (BOOL)isEqual:(id)other {
    return [other isKindOfClass:[VZMACAddress class]] && memcmp(_bytes, ((VZMACAddress *)other)->_bytes, 6) == 0;
}
- (NSUInteger)hash { return ((NSUInteger)_bytes[2] << 24) | ((NSUInteger)_bytes[3] << 16) | ((NSUInteger)_bytes[4] << 8) | _bytes[5]; }
@end

@interface VZNetworkDeviceAttachment : NSObject
@end
@implementation VZNetworkDeviceAttachment
VZ_ROOT_METHODS
@end

@interface VZNATNetworkDeviceAttachment : VZNetworkDeviceAttachment
@end
@implementation VZNATNetworkDeviceAttachment
- (id)init { VZ_RECORD(); return [super init]; }
@end

@interface VZFileHandleNetworkDeviceAttachment : VZNetworkDeviceAttachment {
@public
    NSFileHandle *_fileHandle;
    NSInteger _maximumTransmissionUnit;
}
@end
@implementation VZFileHandleNetworkDeviceAttachment
- (id)initWithFileHandle:(NSFileHandle *)fileHandle {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    @try {
        vz_require_object(self, _cmd, fileHandle, "fileHandle");
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    _fileHandle = [fileHandle retain];
    _maximumTransmissionUnit = 1500;
    return self;
}
- (NSFileHandle *)fileHandle { VZ_RECORD(); return vz_ret(_fileHandle); }
- (NSInteger)maximumTransmissionUnit { VZ_RECORD(); return _maximumTransmissionUnit; }
- (void)setMaximumTransmissionUnit:(NSInteger)mtu { VZ_RECORD(); _maximumTransmissionUnit = mtu; }
@end

@interface VZNetworkDeviceConfiguration : NSObject <NSCopying> {
@public
    VZMACAddress *_MACAddress;
    VZNetworkDeviceAttachment *_attachment;
}
@end
@implementation VZNetworkDeviceConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
- (VZMACAddress *)MACAddress { VZ_RECORD(); return vz_ret(_MACAddress); }
- (void)setMACAddress:(VZMACAddress *)address { VZ_RECORD(); vz_set_copied(&_MACAddress, address); }
- (VZNetworkDeviceAttachment *)attachment { VZ_RECORD(); return vz_ret(_attachment); }
- (void)setAttachment:(VZNetworkDeviceAttachment *)attachment { VZ_RECORD(); vz_set_retained(&_attachment, attachment); }
@end

@interface VZVirtioNetworkDeviceConfiguration : VZNetworkDeviceConfiguration
@end
@implementation VZVirtioNetworkDeviceConfiguration
- (id)init {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    tl_quiet++;
    _MACAddress = [[VZMACAddress randomLocallyAdministeredAddress] retain];
    tl_quiet--;
    return self;
}
@end

/* ------------------------------------------------------------------------------------------
 * Sockets, directory sharing, serial ports (configurations)
 * ------------------------------------------------------------------------------------------ */

@interface VZSocketDeviceConfiguration : NSObject <NSCopying>
@end
@implementation VZSocketDeviceConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
@end

@interface VZVirtioSocketDeviceConfiguration : VZSocketDeviceConfiguration
@end
@implementation VZVirtioSocketDeviceConfiguration
- (id)init { VZ_RECORD(); return [super init]; }
@end

@interface VZSharedDirectory : NSObject {
@public
    NSURL *_URL;
    BOOL _readOnly;
}
@end
@implementation VZSharedDirectory
VZ_ROOT_METHODS
- (id)initWithURL:(NSURL *)url readOnly:(BOOL)readOnly {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    @try {
        vz_require_file_url(self, _cmd, url);
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    _URL = vz_quiet_copy(url);
    _readOnly = readOnly;
    return self;
}
- (NSURL *)URL { VZ_RECORD(); return vz_ret(_URL); }
- (BOOL)isReadOnly { VZ_RECORD(); return _readOnly; }
@end

@interface VZDirectoryShare : NSObject
@end
@implementation VZDirectoryShare
VZ_ROOT_METHODS
@end

@interface VZSingleDirectoryShare : VZDirectoryShare {
@public
    VZSharedDirectory *_directory;
}
@end
@implementation VZSingleDirectoryShare
- (id)initWithDirectory:(VZSharedDirectory *)directory {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    @try {
        vz_require_object(self, _cmd, directory, "directory");
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    _directory = [directory retain];
    return self;
}
- (VZSharedDirectory *)directory { VZ_RECORD(); return vz_ret(_directory); }
@end

@interface VZDirectorySharingDeviceConfiguration : NSObject <NSCopying>
@end
@implementation VZDirectorySharingDeviceConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
@end

static NSError *vz_check_tag(NSString *tag) {
    const char *utf8 = [tag isKindOfClass:[NSString class]] ? [tag UTF8String] : NULL;
    if (!utf8 || !*utf8) return vz_error(VZErrorInvalidVirtualMachineConfiguration, @"The tag must not be empty.");
    if (strlen(utf8) >= 36)
        return vz_error(VZErrorInvalidVirtualMachineConfiguration, @"The tag \"%@\" must be less than 36 bytes in UTF-8.", tag);
    return nil;
}

@interface VZVirtioFileSystemDeviceConfiguration : VZDirectorySharingDeviceConfiguration {
@public
    NSString *_tag;
    VZDirectoryShare *_share;
}
@end
@implementation VZVirtioFileSystemDeviceConfiguration
- (id)initWithTag:(NSString *)tag {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    _tag = [(tag ? tag : @"") copy];
    return self;
}
+ (BOOL)validateTag:(NSString *)tag error:(NSError **)error {
    VZ_RECORD();
    long code;
    if (vz_take_failure(_cmd, &code)) return vz_fail(error, vz_injected_error(_cmd, code));
    NSError *e = vz_check_tag(tag);
    return e ? vz_fail(error, e) : YES;
}
+ (NSString *)macOSGuestAutomountTag { VZ_RECORD(); return VZ_FAKE_AUTOMOUNT_TAG; }
- (NSString *)tag { VZ_RECORD(); return vz_ret(_tag); }
- (void)setTag:(NSString *)tag { VZ_RECORD(); vz_set_copied(&_tag, tag ? tag : @""); }
- (VZDirectoryShare *)share { VZ_RECORD(); return vz_ret(_share); }
- (void)setShare:(VZDirectoryShare *)share { VZ_RECORD(); vz_set_retained(&_share, share); }
@end

@interface VZSerialPortAttachment : NSObject
@end
@implementation VZSerialPortAttachment
VZ_ROOT_METHODS
@end

@interface VZFileHandleSerialPortAttachment : VZSerialPortAttachment {
@public
    NSFileHandle *_fileHandleForReading;
    NSFileHandle *_fileHandleForWriting;
}
@end
@implementation VZFileHandleSerialPortAttachment
- (id)initWithFileHandleForReading:(NSFileHandle *)reading fileHandleForWriting:(NSFileHandle *)writing {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    _fileHandleForReading = [reading retain];
    _fileHandleForWriting = [writing retain];
    return self;
}
- (NSFileHandle *)fileHandleForReading { VZ_RECORD(); return vz_ret(_fileHandleForReading); }
- (NSFileHandle *)fileHandleForWriting { VZ_RECORD(); return vz_ret(_fileHandleForWriting); }
@end

@interface VZSerialPortConfiguration : NSObject <NSCopying> {
@public
    VZSerialPortAttachment *_attachment;
}
@end
@implementation VZSerialPortConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
- (VZSerialPortAttachment *)attachment { VZ_RECORD(); return vz_ret(_attachment); }
- (void)setAttachment:(VZSerialPortAttachment *)attachment { VZ_RECORD(); vz_set_retained(&_attachment, attachment); }
@end

@interface VZVirtioConsoleDeviceSerialPortConfiguration : VZSerialPortConfiguration
@end
@implementation VZVirtioConsoleDeviceSerialPortConfiguration
- (id)init { VZ_RECORD(); return [super init]; }
@end

/* ------------------------------------------------------------------------------------------
 * VZVirtualMachineConfiguration
 * ------------------------------------------------------------------------------------------ */

@interface VZVirtualMachineConfiguration : NSObject <NSCopying> {
@public
    VZBootLoader *_bootLoader;
    VZPlatformConfiguration *_platform;
    uint64_t _memorySize;
    NSUInteger _CPUCount;
    NSArray *_directorySharingDevices;
    NSArray *_graphicsDevices;
    NSArray *_keyboards;
    NSArray *_networkDevices;
    NSArray *_pointingDevices;
    NSArray *_serialPorts;
    NSArray *_socketDevices;
    NSArray *_storageDevices;
}
@end

static BOOL vz_file_exists(NSURL *url, BOOL directory) {
    struct stat st;
    if (!url || stat(vz_path(url), &st) != 0) return NO;
    return directory ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

@implementation VZVirtualMachineConfiguration
VZ_ROOT_METHODS
VZ_COPYING_METHODS
- (id)init {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    tl_quiet++;
    _platform = [[VZGenericPlatformConfiguration alloc] init];
    tl_quiet--;
    _memorySize = VZ_FAKE_MIN_MEMORY;
    _CPUCount = 1;
    NSArray *empty = [NSArray array];
    _directorySharingDevices = [empty retain];
    _graphicsDevices = [empty retain];
    _keyboards = [empty retain];
    _networkDevices = [empty retain];
    _pointingDevices = [empty retain];
    _serialPorts = [empty retain];
    _socketDevices = [empty retain];
    _storageDevices = [empty retain];
    return self;
}

- (VZBootLoader *)bootLoader { VZ_RECORD(); return vz_ret(_bootLoader); }
- (void)setBootLoader:(VZBootLoader *)v { VZ_RECORD(); vz_set_retained(&_bootLoader, v); }
- (VZPlatformConfiguration *)platform { VZ_RECORD(); return vz_ret(_platform); }
- (void)setPlatform:(VZPlatformConfiguration *)v { VZ_RECORD(); vz_set_retained(&_platform, v); }
- (uint64_t)memorySize { VZ_RECORD(); return _memorySize; }
- (void)setMemorySize:(uint64_t)v { VZ_RECORD(); _memorySize = v; }
- (NSUInteger)CPUCount { VZ_RECORD(); return _CPUCount; }
- (void)setCPUCount:(NSUInteger)v { VZ_RECORD(); _CPUCount = v; }
- (NSArray *)directorySharingDevices { VZ_RECORD(); return vz_ret(_directorySharingDevices); }
- (void)setDirectorySharingDevices:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_directorySharingDevices, vz_array_arg(v)); }
- (NSArray *)graphicsDevices { VZ_RECORD(); return vz_ret(_graphicsDevices); }
- (void)setGraphicsDevices:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_graphicsDevices, vz_array_arg(v)); }
- (NSArray *)keyboards { VZ_RECORD(); return vz_ret(_keyboards); }
- (void)setKeyboards:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_keyboards, vz_array_arg(v)); }
- (NSArray *)networkDevices { VZ_RECORD(); return vz_ret(_networkDevices); }
- (void)setNetworkDevices:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_networkDevices, vz_array_arg(v)); }
- (NSArray *)pointingDevices { VZ_RECORD(); return vz_ret(_pointingDevices); }
- (void)setPointingDevices:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_pointingDevices, vz_array_arg(v)); }
- (NSArray *)serialPorts { VZ_RECORD(); return vz_ret(_serialPorts); }
- (void)setSerialPorts:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_serialPorts, vz_array_arg(v)); }
- (NSArray *)socketDevices { VZ_RECORD(); return vz_ret(_socketDevices); }
- (void)setSocketDevices:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_socketDevices, vz_array_arg(v)); }
- (NSArray *)storageDevices { VZ_RECORD(); return vz_ret(_storageDevices); }
- (void)setStorageDevices:(NSArray *)v { VZ_RECORD(); vz_set_copied(&_storageDevices, vz_array_arg(v)); }

+ (uint64_t)minimumAllowedMemorySize { VZ_RECORD(); return VZ_FAKE_MIN_MEMORY; }
+ (uint64_t)maximumAllowedMemorySize { VZ_RECORD(); return VZ_FAKE_MAX_MEMORY; }
+ (NSUInteger)minimumAllowedCPUCount { VZ_RECORD(); return VZ_FAKE_MIN_CPUS; }
+ (NSUInteger)maximumAllowedCPUCount { VZ_RECORD(); return VZ_FAKE_MAX_CPUS; }

/* The configuration rules the fake checks (README.md lists them). nil when valid. */
- (NSError *)_vzValidationError {
#define INVALID(...) return vz_error(VZErrorInvalidVirtualMachineConfiguration, @"Invalid virtual machine configuration. " __VA_ARGS__)
    if (!_bootLoader) INVALID(@"A boot loader is required.");
    if (_CPUCount < VZ_FAKE_MIN_CPUS || _CPUCount > VZ_FAKE_MAX_CPUS)
        INVALID(@"The CPU count %lu is outside [%lu, %lu].", (unsigned long)_CPUCount, VZ_FAKE_MIN_CPUS, VZ_FAKE_MAX_CPUS);
    if (_memorySize % (1ULL << 20) != 0) INVALID(@"The memory size must be a multiple of 1 MiB.");
    if (_memorySize < VZ_FAKE_MIN_MEMORY || _memorySize > VZ_FAKE_MAX_MEMORY)
        INVALID(@"The memory size %llu is outside [%llu, %llu].", (unsigned long long)_memorySize, VZ_FAKE_MIN_MEMORY, VZ_FAKE_MAX_MEMORY);
    BOOL mac = [_platform isKindOfClass:[VZMacPlatformConfiguration class]];
    if ([_bootLoader isKindOfClass:[VZMacOSBootLoader class]] && !mac)
        INVALID(@"VZMacOSBootLoader requires a VZMacPlatformConfiguration.");
    if ([_bootLoader isKindOfClass:[VZLinuxBootLoader class]] && ![_platform isKindOfClass:[VZGenericPlatformConfiguration class]])
        INVALID(@"VZLinuxBootLoader requires a VZGenericPlatformConfiguration.");
    if (mac) {
        VZMacPlatformConfiguration *p = (VZMacPlatformConfiguration *)_platform;
        if (!p->_hardwareModel) INVALID(@"The hardware model is not set.");
        if (![p->_hardwareModel _vzSupported]) INVALID(@"The hardware model is not supported on this host.");
        if (!p->_machineIdentifier) INVALID(@"The machine identifier is not set.");
        if (!p->_auxiliaryStorage) INVALID(@"The auxiliary storage is not set.");
        if (!vz_file_exists(p->_auxiliaryStorage->_URL, NO)) INVALID(@"Failed to lock auxiliary storage.");
    }
    for (VZStorageDeviceConfiguration *s in _storageDevices) {
        id a = s->_attachment;
        if ([a isKindOfClass:[VZDiskImageStorageDeviceAttachment class]] &&
            !vz_file_exists(((VZDiskImageStorageDeviceAttachment *)a)->_URL, NO))
            INVALID(@"The storage device attachment is invalid.");
    }
    NSUInteger nicIndex = 0;
    for (VZNetworkDeviceConfiguration *n in _networkDevices) {
        id a = n->_attachment;
        /* Apple's header: "The configuration is only valid with valid MACAddress and attachment." */
        if (!a && g_requireNetworkAttachment) INVALID(@"The network device %lu has no attachment.", (unsigned long)nicIndex);
        nicIndex++;
        if ([a isKindOfClass:[VZFileHandleNetworkDeviceAttachment class]]) {
            NSInteger mtu = ((VZFileHandleNetworkDeviceAttachment *)a)->_maximumTransmissionUnit;
            if (mtu < 1500 || mtu > 65535) INVALID(@"The maximum transmission unit %ld is outside [1500, 65535].", (long)mtu);
        }
    }
    if ([_socketDevices count] > 1) INVALID(@"Only one Virtio socket device can be used per virtual machine.");
    NSMutableSet *tags = [NSMutableSet set];
    for (VZDirectorySharingDeviceConfiguration *d in _directorySharingDevices) {
        if (![d isKindOfClass:[VZVirtioFileSystemDeviceConfiguration class]]) continue;
        VZVirtioFileSystemDeviceConfiguration *fs = (VZVirtioFileSystemDeviceConfiguration *)d;
        NSError *tagError = vz_check_tag(fs->_tag);
        if (tagError) return tagError;
        if ([tags containsObject:fs->_tag]) INVALID(@"The tag \"%@\" is used by more than one device.", fs->_tag);
        [tags addObject:fs->_tag];
        if (!fs->_share) INVALID(@"The directory sharing device \"%@\" has no share.", fs->_tag);
        if ([fs->_share isKindOfClass:[VZSingleDirectoryShare class]]) {
            VZSharedDirectory *dir = ((VZSingleDirectoryShare *)fs->_share)->_directory;
            if (!vz_file_exists(dir->_URL, YES)) INVALID(@"The shared directory %@ does not exist.", [dir->_URL path]);
        }
    }
    for (VZGraphicsDeviceConfiguration *g in _graphicsDevices) {
        if (![g isKindOfClass:[VZMacGraphicsDeviceConfiguration class]]) continue;
        NSArray *displays = ((VZMacGraphicsDeviceConfiguration *)g)->_displays;
        if ([displays count] == 0) INVALID(@"A graphics device needs at least one display.");
        for (VZMacGraphicsDisplayConfiguration *d in displays)
            if (d->_widthInPixels <= 0 || d->_heightInPixels <= 0 || d->_pixelsPerInch <= 0)
                INVALID(@"Invalid display %ldx%ld at %ld ppi.", (long)d->_widthInPixels, (long)d->_heightInPixels, (long)d->_pixelsPerInch);
    }
    return nil;
#undef INVALID
}

/* The save/restore rule the fake models: a configuration with a directory sharing device
 * (VZVirtioFileSystemDeviceConfiguration) cannot be saved or restored. */
- (NSError *)_vzSaveRestoreError {
    if ([_directorySharingDevices count] > 0)
        return vz_error(VZErrorNotSupported, @"Save and restore are not supported with directory sharing devices.");
    return nil;
}

- (BOOL)validateWithError:(NSError **)error {
    VZ_RECORD();
    long code;
    if (vz_take_failure(_cmd, &code)) return vz_fail(error, vz_injected_error(_cmd, code));
    NSError *e = [self _vzValidationError];
    return e ? vz_fail(error, e) : YES;
}

- (BOOL)validateSaveRestoreSupportWithError:(NSError **)error {
    VZ_RECORD();
    long code;
    if (vz_take_failure(_cmd, &code)) return vz_fail(error, vz_injected_error(_cmd, code));
    NSError *e = [self _vzSaveRestoreError];
    return e ? vz_fail(error, e) : YES;
}

/* +1 copy whose device configurations are copies too (what the VM keeps). */
- (VZVirtualMachineConfiguration *)_vzDeepCopy {
    VZVirtualMachineConfiguration *c = vz_clone(self, NULL);
    NSArray **arrays[] = { &c->_directorySharingDevices, &c->_graphicsDevices, &c->_keyboards, &c->_networkDevices,
                           &c->_pointingDevices, &c->_serialPorts, &c->_socketDevices, &c->_storageDevices };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        NSMutableArray *items = [NSMutableArray array];
        for (id item in *arrays[i]) [items addObject:[vz_quiet_copy(item) autorelease]];
        vz_set_copied((id *)arrays[i], items);
    }
    if (c->_bootLoader) {
        id b = vz_quiet_copy(c->_bootLoader);
        [c->_bootLoader release];
        c->_bootLoader = b;
    }
    if (c->_platform) {
        id p = vz_quiet_copy(c->_platform);
        [c->_platform release];
        c->_platform = p;
    }
    return c;
}

/* What a saved state file records and a restore compares. */
- (NSString *)_vzFingerprint {
    NSString *machine = @"-";
    if ([_platform isKindOfClass:[VZMacPlatformConfiguration class]])
        machine = vz_hex(((VZMacPlatformConfiguration *)_platform)->_machineIdentifier->_dataRepresentation);
    return [NSString stringWithFormat:@"cpus=%lu memory=%llu platform=%s bootLoader=%s machine=%@ storage=%lu network=%lu socket=%lu graphics=%lu",
                                      (unsigned long)_CPUCount, (unsigned long long)_memorySize,
                                      class_getName(object_getClass(_platform)), class_getName(object_getClass(_bootLoader)),
                                      machine, (unsigned long)[_storageDevices count], (unsigned long)[_networkDevices count],
                                      (unsigned long)[_socketDevices count], (unsigned long)[_graphicsDevices count]];
}
@end

/* ------------------------------------------------------------------------------------------
 * Runtime devices
 * ------------------------------------------------------------------------------------------ */

static pthread_mutex_t g_stateMu; /* recursive; guards VM state, device attachments, listeners */
static pthread_once_t g_stateOnce = PTHREAD_ONCE_INIT;
static void vz_state_init(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&g_stateMu, &a);
    pthread_mutexattr_destroy(&a);
}
static void vz_lock(void) {
    pthread_once(&g_stateOnce, vz_state_init);
    pthread_mutex_lock(&g_stateMu);
}
static void vz_unlock(void) { pthread_mutex_unlock(&g_stateMu); }

@interface VZNetworkDevice : NSObject {
@public
    VZNetworkDeviceAttachment *_attachment;
    VZVirtualMachine *_vmUnretained;
    NSUInteger _index;
}
@end

@interface VZSocketDevice : NSObject
@end
@implementation VZSocketDevice
VZ_ROOT_METHODS
@end

@interface VZVirtioSocketConnection : NSObject {
@public
    int _fileDescriptor;
    uint32_t _sourcePort, _destinationPort;
}
@end
@implementation VZVirtioSocketConnection
VZ_ROOT_ALLOC
- (id)_vzInitWithFileDescriptor:(int)fd sourcePort:(uint32_t)source destinationPort:(uint32_t)destination {
    if (!(self = [super init])) return nil;
    _fileDescriptor = fd;
    _sourcePort = source;
    _destinationPort = destination;
    return self;
}
- (int)fileDescriptor {
    VZ_RECORD();
    vz_lock();
    int fd = _fileDescriptor;
    vz_unlock();
    return fd;
}
- (uint32_t)sourcePort { VZ_RECORD(); return _sourcePort; }
- (uint32_t)destinationPort { VZ_RECORD(); return _destinationPort; }
- (void)_vzClose {
    vz_lock();
    int fd = _fileDescriptor;
    _fileDescriptor = -1;
    vz_unlock();
    if (fd >= 0) close(fd);
}
- (void)close { VZ_RECORD(); [self _vzClose]; }
- (void)dealloc {
    [self _vzClose]; /* Apple's connection owns its descriptor too */
    VZ_ROOT_DEALLOC_TAIL
}
@end

@interface VZVirtioSocketListener : NSObject {
@public
    id _delegateUnretained;
}
@end
@implementation VZVirtioSocketListener
VZ_ROOT_METHODS
- (id)init { VZ_RECORD(); return [super init]; }
- (id)delegate {
    VZ_RECORD();
    vz_lock();
    id d = _delegateUnretained;
    vz_unlock();
    return d;
}
- (void)setDelegate:(id)delegate {
    VZ_RECORD();
    vz_lock();
    _delegateUnretained = delegate;
    vz_unlock();
}
- (id)_vzDelegate {
    vz_lock();
    id d = [_delegateUnretained retain];
    vz_unlock();
    return [d autorelease];
}
@end

#define VZ_MAX_PENDING 64
@interface VZVirtioSocketDevice : VZSocketDevice {
@public
    NSMutableDictionary *_listeners; /* NSNumber(port) -> VZVirtioSocketListener */
    VZVirtualMachine *_vmUnretained;
    uint32_t _guestListening[VZ_MAX_PENDING];
    int _guestListeningCount;
    struct { uint32_t port; int fd; } _pending[VZ_MAX_PENDING]; /* guest ends of connectToPort: */
    int _pendingCount;
    uint32_t _nextHostPort;
}
@end

@interface VZVirtualMachine : NSObject {
@public
    VZVirtualMachineConfiguration *_configuration;
    id _delegateUnretained;
    VZVirtualMachineState _state;
    NSArray *_networkDevices;
    NSArray *_socketDevices;
}
- (void)_vzGuestPrintsBootLine;
- (void)_vzNotifyDisconnect:(VZNetworkDevice *)device error:(NSError *)error;
@end

@implementation VZNetworkDevice
VZ_ROOT_METHODS
- (VZNetworkDeviceAttachment *)attachment {
    VZ_RECORD();
    vz_lock();
    id a = [_attachment retain];
    vz_unlock();
    return [a autorelease];
}
/* Takes effect at once. With an injected failure the attachment then drops to nil and the
 * delegate hears virtualMachine:networkDevice:attachmentWasDisconnectedWithError:, as Apple
 * documents for a change that fails. */
- (void)setAttachment:(VZNetworkDeviceAttachment *)attachment {
    VZ_RECORD();
    vz_lock();
    vz_set_retained(&_attachment, attachment);
    VZVirtualMachine *vm = [_vmUnretained retain];
    vz_unlock();
    long code;
    if (vz_take_failure(_cmd, &code) && vm) {
        NSError *error = vz_injected_error(_cmd, code);
        [vm _vzNotifyDisconnect:self error:error];
    }
    [vm release];
}
@end

@implementation VZVirtioSocketDevice
- (id)_vzInitWithVirtualMachine:(VZVirtualMachine *)vm {
    if (!(self = [super init])) return nil;
    _listeners = [[NSMutableDictionary alloc] init];
    _vmUnretained = vm;
    _nextHostPort = 49152;
    return self;
}
- (void)setSocketListener:(VZVirtioSocketListener *)listener forPort:(uint32_t)port {
    VZ_RECORD();
    vz_lock();
    @try {
        vz_require_object(self, _cmd, listener, "listener");
        [_listeners setObject:listener forKey:[NSNumber numberWithUnsignedInt:port]];
    } @finally {
        vz_unlock();
    }
}
- (void)removeSocketListenerForPort:(uint32_t)port {
    VZ_RECORD();
    vz_lock();
    [_listeners removeObjectForKey:[NSNumber numberWithUnsignedInt:port]];
    vz_unlock();
}
- (VZVirtioSocketListener *)_vzListenerForPort:(uint32_t)port {
    vz_lock();
    id l = [[_listeners objectForKey:[NSNumber numberWithUnsignedInt:port]] retain];
    vz_unlock();
    return [l autorelease];
}
- (BOOL)_vzGuestListensOn:(uint32_t)port {
    for (int i = 0; i < _guestListeningCount; i++)
        if (_guestListening[i] == port) return YES;
    return NO;
}
/* The guest end of the new connection is kept for VZFakeGuestAccept. */
- (void)connectToPort:(uint32_t)port completionHandler:(void (^)(VZVirtioSocketConnection *, NSError *))handler {
    VZ_RECORD();
    long code;
    NSError *error = nil;
    VZVirtioSocketConnection *connection = nil;
    vz_lock();
    VZVirtualMachineState state = _vmUnretained ? _vmUnretained->_state : VZVirtualMachineStateStopped;
    if (vz_take_failure(_cmd, &code)) {
        error = vz_injected_error(_cmd, code);
    } else if (state != VZVirtualMachineStateRunning) {
        error = vz_error(VZErrorInvalidVirtualMachineState, @"The virtual machine is not running.");
    } else if (![self _vzGuestListensOn:port]) {
        error = vz_error_in(NSPOSIXErrorDomain, ECONNRESET, @"The guest does not listen on port %u.", port);
    } else {
        int fds[2];
        if (_pendingCount >= VZ_MAX_PENDING || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
            error = vz_error_in(NSPOSIXErrorDomain, EMFILE, @"Cannot create the connection.");
        } else {
            connection = [[VZVirtioSocketConnection alloc] _vzInitWithFileDescriptor:fds[0] sourcePort:_nextHostPort++ destinationPort:port];
            _pending[_pendingCount].port = port;
            _pending[_pendingCount].fd = fds[1];
            _pendingCount++;
        }
    }
    vz_unlock();
    void (^h)(VZVirtioSocketConnection *, NSError *) = Block_copy(handler);
    [error retain];
    [self retain];
    vz_later(g_delayMs, ^{
        vz_event("completion -[%s connectToPort:completionHandler:] error=%ld", class_getName(object_getClass(self)), error ? (long)[error code] : 0L);
        if (h) h(connection, error);
        if (h) Block_release(h);
        [connection release];
        [error release];
        [self release];
    });
}
- (int)_vzTakeGuestEnd:(uint32_t)port {
    int fd = -1;
    vz_lock();
    for (int i = 0; i < _pendingCount; i++) {
        if (_pending[i].port != port) continue;
        fd = _pending[i].fd;
        memmove(&_pending[i], &_pending[i + 1], sizeof _pending[0] * (size_t)(_pendingCount - i - 1));
        _pendingCount--;
        break;
    }
    vz_unlock();
    return fd;
}
- (void)dealloc {
    for (int i = 0; i < _pendingCount; i++) close(_pending[i].fd);
    _pendingCount = 0;
    [super dealloc];
}
@end

/* ------------------------------------------------------------------------------------------
 * VZVirtualMachine
 * ------------------------------------------------------------------------------------------ */

typedef void (^vz_completion)(NSError *);
typedef NSError * (^vz_work)(void);

static const char *vz_state_name(VZVirtualMachineState s) {
    static const char *names[] = { "Stopped", "Running", "Paused", "Error", "Starting", "Pausing", "Resuming", "Stopping", "Saving", "Restoring" };
    return (s >= 0 && s < (NSInteger)(sizeof names / sizeof names[0])) ? names[s] : "?";
}

static BOOL vz_can_start(VZVirtualMachineState s) { return s == VZVirtualMachineStateStopped || s == VZVirtualMachineStateError; }
static BOOL vz_can_stop(VZVirtualMachineState s) { return s == VZVirtualMachineStateRunning || s == VZVirtualMachineStatePaused; }
static BOOL vz_is_running(VZVirtualMachineState s) { return s == VZVirtualMachineStateRunning; }
static BOOL vz_is_paused(VZVirtualMachineState s) { return s == VZVirtualMachineStatePaused; }
static BOOL vz_is_stopped(VZVirtualMachineState s) { return s == VZVirtualMachineStateStopped; }
static BOOL vz_never(VZVirtualMachineState s) { (void)s; return NO; }

@implementation VZVirtualMachine
VZ_ROOT_ALLOC

+ (BOOL)isSupported { VZ_RECORD(); return YES; }

/* Apple raises for an invalid configuration ("The configuration must be valid"); so does the fake.
 * The queue is accepted and ignored: completion handlers and delegate methods run on the fake's
 * worker thread. */
- (id)_vzInitWithConfiguration:(VZVirtualMachineConfiguration *)configuration cmd:(SEL)cmd {
    if (!(self = [super init])) return nil;
    @try {
        if (![configuration isKindOfClass:[VZVirtualMachineConfiguration class]])
            vz_raise(self, cmd, @"A VZVirtualMachineConfiguration is required.");
        NSError *invalid = [configuration _vzValidationError];
        if (invalid) vz_raise(self, cmd, @"%@", [invalid localizedDescription]);
    } @catch (NSException *e) {
        [self release];
        @throw;
    }
    _configuration = [configuration _vzDeepCopy];
    _state = VZVirtualMachineStateStopped;
    NSMutableArray *nics = [NSMutableArray array];
    NSUInteger index = 0;
    for (VZNetworkDeviceConfiguration *n in _configuration->_networkDevices) {
        VZNetworkDevice *d = [[VZNetworkDevice alloc] init];
        d->_attachment = [n->_attachment retain];
        d->_vmUnretained = self;
        d->_index = index++;
        [nics addObject:d];
        [d release];
    }
    _networkDevices = [nics copy];
    NSMutableArray *sockets = [NSMutableArray array];
    for (id s in _configuration->_socketDevices) {
        if (![s isKindOfClass:[VZVirtioSocketDeviceConfiguration class]]) continue;
        VZVirtioSocketDevice *d = [[VZVirtioSocketDevice alloc] _vzInitWithVirtualMachine:self];
        [sockets addObject:d];
        [d release];
    }
    _socketDevices = [sockets copy];
    return self;
}
- (id)initWithConfiguration:(VZVirtualMachineConfiguration *)configuration {
    VZ_RECORD();
    return [self _vzInitWithConfiguration:configuration cmd:_cmd];
}
- (id)initWithConfiguration:(VZVirtualMachineConfiguration *)configuration queue:(id)queue {
    VZ_RECORD();
    (void)queue;
    return [self _vzInitWithConfiguration:configuration cmd:_cmd];
}

- (void)dealloc {
    vz_lock();
    for (VZNetworkDevice *d in _networkDevices) d->_vmUnretained = nil;
    for (VZVirtioSocketDevice *d in _socketDevices) d->_vmUnretained = nil;
    vz_unlock();
    VZ_ROOT_DEALLOC_TAIL
}

- (VZVirtualMachineState)state {
    VZ_RECORD();
    vz_lock();
    VZVirtualMachineState s = _state;
    vz_unlock();
    return s;
}
- (id)delegate {
    VZ_RECORD();
    vz_lock();
    id d = _delegateUnretained;
    vz_unlock();
    return d;
}
- (void)setDelegate:(id)delegate {
    VZ_RECORD();
    vz_lock();
    _delegateUnretained = delegate;
    vz_unlock();
}
- (id)_vzDelegate {
    vz_lock();
    id d = [_delegateUnretained retain];
    vz_unlock();
    return [d autorelease];
}


- (BOOL)_vzStateIs:(BOOL (*)(VZVirtualMachineState))test {
    vz_lock();
    BOOL r = test(_state);
    vz_unlock();
    return r;
}
- (BOOL)canStart { VZ_RECORD(); return [self _vzStateIs:vz_can_start]; }
- (BOOL)canStop { VZ_RECORD(); return [self _vzStateIs:vz_can_stop]; }
- (BOOL)canPause { VZ_RECORD(); return [self _vzStateIs:vz_is_running]; }
- (BOOL)canResume { VZ_RECORD(); return [self _vzStateIs:vz_is_paused]; }
- (BOOL)canRequestStop { VZ_RECORD(); return [self _vzStateIs:vz_is_running]; }

- (NSArray *)networkDevices { VZ_RECORD(); return vz_ret(_networkDevices); }
- (NSArray *)socketDevices { VZ_RECORD(); return vz_ret(_socketDevices); }

/* Common path of the asynchronous operations. Under the state lock: when `allowed(state)` is
 * false the handler gets `refusal` later and nothing changes; otherwise the state becomes
 * `transitional` now and, on the worker thread after the delay, `work` runs (unless a failure
 * was injected), the state becomes `success` or `failure` (-1: the state before the call), and
 * the handler runs. */
- (void)_vzOperation:(SEL)cmd
             handler:(vz_completion)handler
             allowed:(BOOL (*)(VZVirtualMachineState))allowed
             refusal:(NSError *)refusal
        transitional:(VZVirtualMachineState)transitional
             success:(VZVirtualMachineState)success
             failure:(VZVirtualMachineState)failure
                work:(vz_work)work
                keep:(id)keep {
    NSError *error = nil;
    long code;
    vz_lock();
    VZVirtualMachineState before = _state;
    BOOL accepted = allowed(before);
    if (!accepted) {
        error = refusal;
    } else {
        _state = transitional;
        if (vz_take_failure(cmd, &code)) error = vz_injected_error(cmd, code);
    }
    vz_unlock();
    if (failure < 0) failure = before;

    vz_completion h = Block_copy(handler);
    vz_work w = work ? Block_copy(work) : NULL;
    const char *selector = sel_getName(cmd);
    [self retain];
    [error retain];
    [keep retain]; /* blocks do not retain captured objects here (no _Block_use_RR on GCC's runtime) */
    vz_later(g_delayMs, ^{
        NSError *result = error;
        if (accepted && !result && w) result = w();
        vz_lock();
        if (accepted && _state == transitional) _state = result ? failure : success;
        VZVirtualMachineState now = _state;
        vz_unlock();
        vz_event("completion -[VZVirtualMachine %s] error=%ld state=%s", selector, result ? (long)[result code] : 0L,
                 vz_state_name(now));
        if (h) h(result);
        if (h) Block_release(h);
        if (w) Block_release(w);
        [keep release];
        [error release];
        [self release];
    });
}

- (void)startWithCompletionHandler:(void (^)(NSError *))handler {
    VZ_RECORD();
    [self _vzOperation:_cmd handler:handler allowed:vz_can_start
               refusal:vz_error(VZErrorInvalidVirtualMachineStateTransition, @"The virtual machine cannot be started in its current state.")
          transitional:VZVirtualMachineStateStarting success:VZVirtualMachineStateRunning failure:VZVirtualMachineStateStopped
                  work:^NSError *(void) {
                      [self _vzGuestPrintsBootLine];
                      return nil;
                  }
                  keep:nil];
}

/* The simulated guest boots: it prints one line on every file-handle serial port, so a host that
 * waits for console output as the guest's sign of life sees one. Write errors are ignored. */
- (void)_vzGuestPrintsBootLine {
    static const char line[] = "VZFake guest: booted\n";
    for (VZSerialPortConfiguration *port in _configuration->_serialPorts) {
        if (![port->_attachment isKindOfClass:[VZFileHandleSerialPortAttachment class]]) continue;
        NSFileHandle *out = ((VZFileHandleSerialPortAttachment *)port->_attachment)->_fileHandleForWriting;
        if (!out) continue;
        ssize_t n = write([out fileDescriptor], line, sizeof line - 1);
        (void)n;
    }
}
- (void)pauseWithCompletionHandler:(void (^)(NSError *))handler {
    VZ_RECORD();
    [self _vzOperation:_cmd handler:handler allowed:vz_is_running
               refusal:vz_error(VZErrorInvalidVirtualMachineStateTransition, @"The virtual machine cannot be paused in its current state.")
          transitional:VZVirtualMachineStatePausing success:VZVirtualMachineStatePaused failure:VZVirtualMachineStateRunning work:nil keep:nil];
}
- (void)resumeWithCompletionHandler:(void (^)(NSError *))handler {
    VZ_RECORD();
    [self _vzOperation:_cmd handler:handler allowed:vz_is_paused
               refusal:vz_error(VZErrorInvalidVirtualMachineStateTransition, @"The virtual machine cannot be resumed in its current state.")
          transitional:VZVirtualMachineStateResuming success:VZVirtualMachineStateRunning failure:VZVirtualMachineStatePaused work:nil keep:nil];
}
- (void)stopWithCompletionHandler:(void (^)(NSError *))handler {
    VZ_RECORD();
    [self _vzOperation:_cmd handler:handler allowed:vz_can_stop
               refusal:vz_error(VZErrorInvalidVirtualMachineStateTransition, @"The virtual machine cannot be stopped in its current state.")
          transitional:VZVirtualMachineStateStopping success:VZVirtualMachineStateStopped failure:-1 work:nil keep:nil];
}

/* Saving: the VM must be paused (else VZErrorInvalidVirtualMachineState) and its configuration
 * savable (else VZErrorSave); state Saving, then Paused whatever the outcome. The file holds a
 * fingerprint of the configuration. */
- (void)saveMachineStateToURL:(NSURL *)url completionHandler:(void (^)(NSError *))handler {
    VZ_RECORD();
    vz_require_file_url(self, _cmd, url);
    NSError *refusal = nil;
    NSError *unsupported = [_configuration _vzSaveRestoreError];
    vz_lock();
    BOOL paused = _state == VZVirtualMachineStatePaused;
    vz_unlock();
    if (!paused)
        refusal = vz_error(VZErrorInvalidVirtualMachineState, @"The virtual machine must be paused to be saved.");
    else if (unsupported)
        refusal = vz_error(VZErrorSave, @"The virtual machine configuration does not support saving: %@", [unsupported localizedDescription]);
    NSString *path = [[[url path] copy] autorelease];
    NSString *contents = [NSString stringWithFormat:@"VZFakeSavedState 1\n%@\n", [_configuration _vzFingerprint]];
    NSArray *keep = [NSArray arrayWithObjects:path, contents, nil];
    [self _vzOperation:_cmd handler:handler allowed:(refusal ? vz_never : vz_is_paused) refusal:refusal
          transitional:VZVirtualMachineStateSaving success:VZVirtualMachineStatePaused failure:VZVirtualMachineStatePaused
                  work:^NSError *(void) {
                      const char *bytes = [contents UTF8String];
                      FILE *f = fopen([path fileSystemRepresentation], "w");
                      if (!f) return vz_error(VZErrorSave, @"Cannot write the save file %@: %s", path, strerror(errno));
                      size_t n = fwrite(bytes, 1, strlen(bytes), f);
                      if (fclose(f) != 0 || n != strlen(bytes)) return vz_error(VZErrorSave, @"Cannot write the save file %@.", path);
                      return nil;
                  }
                  keep:keep];
}

/* Restoring: the VM must be stopped (else VZErrorInvalidVirtualMachineStateTransition), the
 * configuration restorable, the file readable and made from an equal configuration (else
 * VZErrorRestore). State Restoring, then Paused on success, Stopped on failure. */
- (void)restoreMachineStateFromURL:(NSURL *)url completionHandler:(void (^)(NSError *))handler {
    VZ_RECORD();
    vz_require_file_url(self, _cmd, url);
    NSError *refusal = nil;
    NSError *unsupported = [_configuration _vzSaveRestoreError];
    vz_lock();
    BOOL stopped = _state == VZVirtualMachineStateStopped;
    vz_unlock();
    if (!stopped)
        refusal = vz_error(VZErrorInvalidVirtualMachineStateTransition, @"The virtual machine must be stopped to be restored.");
    else if (unsupported)
        refusal = vz_error(VZErrorRestore, @"The virtual machine configuration does not support restoring: %@", [unsupported localizedDescription]);
    NSString *path = [[[url path] copy] autorelease];
    NSString *expected = [NSString stringWithFormat:@"VZFakeSavedState 1\n%@\n", [_configuration _vzFingerprint]];
    NSArray *keep = [NSArray arrayWithObjects:path, expected, nil];
    [self _vzOperation:_cmd handler:handler allowed:(refusal ? vz_never : vz_is_stopped) refusal:refusal
          transitional:VZVirtualMachineStateRestoring success:VZVirtualMachineStatePaused failure:VZVirtualMachineStateStopped
                  work:^NSError *(void) {
                      NSData *data = [NSData dataWithContentsOfFile:path];
                      if (!data) return vz_error(VZErrorRestore, @"Cannot read the save file %@.", path);
                      NSString *text = [[[NSString alloc] initWithData:data encoding:NSUTF8StringEncoding] autorelease];
                      if (![text hasPrefix:@"VZFakeSavedState 1\n"])
                          return vz_error(VZErrorRestore, @"The file %@ is not a saved state.", path);
                      if (![text isEqualToString:expected])
                          return vz_error(VZErrorRestore, @"The saved state in %@ does not match this configuration (invalid argument).", path);
                      return nil;
                  }
                  keep:keep];
}

/* Asks the guest to stop: YES when running; the guest then powers off a delay later (unless
 * VZFakeSetGuestHonorsStopRequest(0)) and the delegate hears guestDidStopVirtualMachine:. */
- (BOOL)requestStopWithError:(NSError **)error {
    VZ_RECORD();
    long code;
    if (vz_take_failure(_cmd, &code)) return vz_fail(error, vz_injected_error(_cmd, code));
    vz_lock();
    BOOL running = _state == VZVirtualMachineStateRunning;
    vz_unlock();
    if (!running) return vz_fail(error, vz_error(VZErrorInvalidVirtualMachineState, @"The virtual machine is not running."));
    if (g_guestHonorsStop) [self _vzGuestStopLater];
    return YES;
}

- (void)_vzGuestStopLater {
    [self retain];
    vz_later(g_delayMs, ^{
        vz_lock();
        BOOL live = vz_can_stop(_state);
        if (live) _state = VZVirtualMachineStateStopped;
        vz_unlock();
        if (live) {
            id d = [self _vzDelegate];
            SEL s = @selector(guestDidStopVirtualMachine:);
            if (d && [d respondsToSelector:s]) {
                vz_event("delegate -[%s guestDidStopVirtualMachine:]", class_getName(object_getClass(d)));
                [d guestDidStopVirtualMachine:self];
            } else {
                vz_event("guest stopped (no delegate method)");
            }
        }
        [self release];
    });
}

- (void)_vzErrorLater:(long)code {
    [self retain];
    vz_later(g_delayMs, ^{
        vz_lock();
        BOOL live = vz_can_stop(_state) || _state == VZVirtualMachineStateStarting;
        if (live) _state = VZVirtualMachineStateError;
        vz_unlock();
        if (live) {
            NSError *error = vz_error(code, @"The virtual machine stopped unexpectedly.");
            id d = [self _vzDelegate];
            SEL s = @selector(virtualMachine:didStopWithError:);
            if (d && [d respondsToSelector:s]) {
                vz_event("delegate -[%s virtualMachine:didStopWithError:] code=%ld", class_getName(object_getClass(d)), code);
                [d virtualMachine:self didStopWithError:error];
            } else {
                vz_event("virtual machine stopped with error %ld (no delegate method)", code);
            }
        }
        [self release];
    });
}

- (void)_vzNotifyDisconnect:(VZNetworkDevice *)device error:(NSError *)error {
    [self retain];
    [device retain];
    [error retain];
    vz_later(g_delayMs, ^{
        vz_lock();
        vz_set_retained(&device->_attachment, nil);
        vz_unlock();
        id d = [self _vzDelegate];
        SEL s = @selector(virtualMachine:networkDevice:attachmentWasDisconnectedWithError:);
        if (d && [d respondsToSelector:s]) {
            vz_event("delegate -[%s virtualMachine:networkDevice:attachmentWasDisconnectedWithError:] code=%ld",
                     class_getName(object_getClass(d)), (long)[error code]);
            [d virtualMachine:self networkDevice:device attachmentWasDisconnectedWithError:error];
        } else {
            vz_event("network attachment disconnected (no delegate method)");
        }
        [error release];
        [device release];
        [self release];
    });
}

/* The guest connects to host port `port`; returns the guest end or -1 (see VZFake.h). */
- (int)_vzGuestConnect:(uint32_t)port from:(uint32_t)guestPort {
    vz_lock();
    BOOL running = _state == VZVirtualMachineStateRunning;
    VZVirtioSocketDevice *device = [_socketDevices count] ? [[_socketDevices objectAtIndex:0] retain] : nil;
    vz_unlock();
    [device autorelease];
    if (!running || !device) return -1;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return -1;
    VZVirtioSocketConnection *connection = [[VZVirtioSocketConnection alloc] _vzInitWithFileDescriptor:fds[0] sourcePort:guestPort destinationPort:port];

    __block int accepted = 0, done = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    pthread_mutex_t *pmu = &mu;
    pthread_cond_t *pcv = &cv;
    int *pAccepted = &accepted, *pDone = &done;
    vz_job_block ask = ^{
        VZVirtioSocketListener *listener = [device _vzListenerForPort:port];
        id d = [listener _vzDelegate];
        SEL s = @selector(listener:shouldAcceptNewConnection:fromSocketDevice:);
        BOOL ok = NO;
        if (d && [d respondsToSelector:s]) {
            ok = [d listener:listener shouldAcceptNewConnection:connection fromSocketDevice:device];
            vz_event("delegate -[%s listener:shouldAcceptNewConnection:fromSocketDevice:] port=%u -> %s",
                     class_getName(object_getClass(d)), port, ok ? "YES" : "NO");
        } else {
            vz_event("guest connection to port %u refused (no listener or delegate method)", port);
        }
        if (!ok) [connection _vzClose];
        [connection release]; /* an accepting delegate retains the connection it keeps */
        pthread_mutex_lock(pmu);
        *pAccepted = ok;
        *pDone = 1;
        pthread_cond_signal(pcv);
        pthread_mutex_unlock(pmu);
    };
    if (vz_on_worker()) {
        NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
        ask();
        [pool drain];
    } else {
        vz_later(g_delayMs, ask);
        pthread_mutex_lock(&mu);
        while (!done) pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    if (!accepted) {
        close(fds[1]);
        return -1;
    }
    return fds[1];
}
@end

/* ------------------------------------------------------------------------------------------
 * VZVirtualMachineView (an NSView on Apple; GNUstep base has no AppKit, so an NSObject here)
 * ------------------------------------------------------------------------------------------ */

/* NSBitmapImageRep is AppKit's (an NSImageRep); GNUstep base has no AppKit, so the fake brings the
 * few methods a screenshot needs, with Apple's selectors and types: the pixels are 8-bit RGBA,
 * rows top to bottom, and representationUsingType:properties: writes a real PNG (stored deflate). */
@interface NSBitmapImageRep : NSObject {
@public
    NSInteger _width, _height;
    unsigned char *_pixels;
}
@end

enum { NSBitmapImageFileTypePNG = 4 }; /* AppKit's NSBitmapImageFileType value */

static uint32_t vz_crc32(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void vz_be32(NSMutableData *d, uint32_t v) {
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v };
    [d appendBytes:b length:4];
}

static void vz_png_chunk(NSMutableData *png, const char *type, NSData *data) {
    vz_be32(png, (uint32_t)[data length]);
    NSMutableData *body = [NSMutableData dataWithBytes:type length:4];
    [body appendData:data];
    [png appendData:body];
    vz_be32(png, vz_crc32(0, [body bytes], [body length]));
}

/* RGBA pixels -> PNG, deflate "stored" blocks (no compression library needed). */
static NSData *vz_png(const unsigned char *rgba, NSInteger w, NSInteger h) {
    NSMutableData *raw = [NSMutableData dataWithCapacity:(NSUInteger)((w * 4 + 1) * h)];
    for (NSInteger y = 0; y < h; y++) {
        unsigned char filter = 0;
        [raw appendBytes:&filter length:1];
        [raw appendBytes:rgba + y * w * 4 length:(NSUInteger)(w * 4)];
    }
    NSMutableData *z = [NSMutableData data];
    unsigned char header[2] = { 0x78, 0x01 };
    [z appendBytes:header length:2];
    const unsigned char *p = [raw bytes];
    NSUInteger left = [raw length];
    uint32_t a = 1, b = 0;
    for (NSUInteger i = 0; i < left; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    do {
        NSUInteger n = left > 65535 ? 65535 : left;
        unsigned char block[5] = { (unsigned char)(left == n ? 1 : 0), (unsigned char)n, (unsigned char)(n >> 8),
                                   (unsigned char)~n, (unsigned char)(~n >> 8) };
        [z appendBytes:block length:5];
        [z appendBytes:p length:n];
        p += n;
        left -= n;
    } while (left > 0);
    vz_be32(z, (b << 16) | a);

    NSMutableData *png = [NSMutableData data];
    static const unsigned char signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    [png appendBytes:signature length:8];
    NSMutableData *ihdr = [NSMutableData data];
    vz_be32(ihdr, (uint32_t)w);
    vz_be32(ihdr, (uint32_t)h);
    unsigned char rest[5] = { 8, 6, 0, 0, 0 }; /* 8 bits, RGBA, deflate, no filter, no interlace */
    [ihdr appendBytes:rest length:5];
    vz_png_chunk(png, "IHDR", ihdr);
    vz_png_chunk(png, "IDAT", z);
    vz_png_chunk(png, "IEND", [NSData data]);
    return png;
}

@implementation NSBitmapImageRep
VZ_ROOT_ALLOC
- (id)_vzInitWithWidth:(NSInteger)w height:(NSInteger)h {
    if (!(self = [super init])) return nil;
    _width = w;
    _height = h;
    _pixels = calloc((size_t)(w * h), 4);
    return self;
}
- (NSInteger)pixelsWide { VZ_RECORD(); return _width; }
- (NSInteger)pixelsHigh { VZ_RECORD(); return _height; }
- (unsigned char *)bitmapData { VZ_RECORD(); return _pixels; }
- (NSInteger)bytesPerRow { VZ_RECORD(); return _width * 4; }
- (NSData *)representationUsingType:(NSUInteger)type properties:(NSDictionary *)properties {
    VZ_RECORD();
    if (type != NSBitmapImageFileTypePNG || !_pixels) return nil;
    return vz_png(_pixels, _width, _height);
}
- (void)dealloc {
    free(_pixels);
    _pixels = NULL;
    VZ_ROOT_DEALLOC_TAIL
}
@end

@interface VZVirtualMachineView : NSObject {
@public
    VZVirtualMachine *_virtualMachine;
    BOOL _capturesSystemKeys;
    NSRect _frame;
}
@end
@implementation VZVirtualMachineView
VZ_ROOT_METHODS
- (id)init { VZ_RECORD(); return [super init]; }
- (id)initWithFrame:(NSRect)frame {
    VZ_RECORD();
    if (!(self = [super init])) return nil;
    _frame = frame;
    return self;
}
- (NSRect)frame { VZ_RECORD(); return _frame; }
- (VZVirtualMachine *)virtualMachine { VZ_RECORD(); return vz_ret(_virtualMachine); }
- (void)setVirtualMachine:(VZVirtualMachine *)vm { VZ_RECORD(); vz_set_retained(&_virtualMachine, vm); }
- (BOOL)capturesSystemKeys { VZ_RECORD(); return _capturesSystemKeys; }
- (void)setCapturesSystemKeys:(BOOL)v { VZ_RECORD(); _capturesSystemKeys = v; }
/* NSView's off-screen rendering: a bitmap the size of the rectangle ... */
- (NSBitmapImageRep *)bitmapImageRepForCachingDisplayInRect:(NSRect)rect {
    VZ_RECORD();
    return [[[NSBitmapImageRep alloc] _vzInitWithWidth:(NSInteger)rect.size.width height:(NSInteger)rect.size.height] autorelease];
}
/* ... and the view drawn into it. The fake's "guest display": black without a running or paused
 * VM; otherwise opaque blue (R 0x20, G 0x60, B 0xC0) with a white 16x16 square at the top left. */
- (void)cacheDisplayInRect:(NSRect)rect toBitmapImageRep:(NSBitmapImageRep *)rep {
    VZ_RECORD();
    vz_lock();
    VZVirtualMachineState state = _virtualMachine ? _virtualMachine->_state : VZVirtualMachineStateStopped;
    vz_unlock();
    BOOL on = state == VZVirtualMachineStateRunning || state == VZVirtualMachineStatePaused;
    for (NSInteger y = 0; y < rep->_height; y++)
        for (NSInteger x = 0; x < rep->_width; x++) {
            unsigned char *px = rep->_pixels + (y * rep->_width + x) * 4;
            BOOL mark = on && x < 16 && y < 16;
            px[0] = mark ? 0xFF : on ? 0x20 : 0;
            px[1] = mark ? 0xFF : on ? 0x60 : 0;
            px[2] = mark ? 0xFF : on ? 0xC0 : 0;
            px[3] = 0xFF;
        }
}
@end

/* Makes the two delegate protocols known to the runtime (objc_getProtocol), as Apple's are once
 * the framework is loaded. GCC's runtime registers a protocol when a class adopting it loads, so
 * this private class adopts both; it is never instantiated. */
@interface _VZFakeProtocolAnchor : NSObject <VZVirtualMachineDelegate, VZVirtioSocketListenerDelegate>
@end
@implementation _VZFakeProtocolAnchor
@end

/* ------------------------------------------------------------------------------------------
 * The C test API (VZFake.h)
 * ------------------------------------------------------------------------------------------ */

static const char *vz_snapshot(vz_buf *b, char **slot) {
    pthread_mutex_lock(&g_logMu);
    free(*slot);
    *slot = strdup(b->data ? b->data : "");
    const char *r = *slot;
    pthread_mutex_unlock(&g_logMu);
    return r;
}

VZ_EXPORT_C const char *VZFakeCallLog(void) { return vz_snapshot(&g_calls, &g_callSnapshot); }
VZ_EXPORT_C const char *VZFakeEventLog(void) { return vz_snapshot(&g_events, &g_eventSnapshot); }

VZ_EXPORT_C void VZFakeReset(void) {
    pthread_mutex_lock(&g_logMu);
    g_calls.len = 0;
    if (g_calls.data) g_calls.data[0] = 0;
    g_events.len = 0;
    if (g_events.data) g_events.data[0] = 0;
    while (g_failures) {
        vz_failure *f = g_failures;
        g_failures = f->next;
        free(f->selector);
        free(f);
    }
    pthread_mutex_unlock(&g_logMu);
    g_delayMs = 10;
    g_guestHonorsStop = 1;
    g_requireNetworkAttachment = 1;
}

VZ_EXPORT_C void VZFakeFailNext(const char *selector, long code) {
    if (!selector) return;
    vz_failure *f = calloc(1, sizeof *f);
    if (!f || !(f->selector = strdup(selector))) {
        free(f);
        return;
    }
    f->code = code;
    pthread_mutex_lock(&g_logMu);
    vz_failure **p = &g_failures;
    while (*p) p = &(*p)->next;
    *p = f;
    pthread_mutex_unlock(&g_logMu);
}

/* A C function that does nothing: the benchmark's baseline for one call from .NET into native code. */
VZ_EXPORT_C void *VZFakeBenchNop(void *value) { return value; }

VZ_EXPORT_C void VZFakeSetDelayMs(int milliseconds) { g_delayMs = milliseconds < 0 ? 0 : milliseconds; }
VZ_EXPORT_C void VZFakeSetGuestHonorsStopRequest(int honors) { g_guestHonorsStop = honors != 0; }
VZ_EXPORT_C void VZFakeSetRequireNetworkAttachment(int require) { g_requireNetworkAttachment = require != 0; }

VZ_EXPORT_C int VZFakeWaitIdle(int timeoutMilliseconds) {
    uint64_t deadline = vz_now_ns() + (uint64_t)(timeoutMilliseconds < 0 ? 0 : timeoutMilliseconds) * 1000000ULL;
    pthread_mutex_lock(&g_qMu);
    int idle;
    for (;;) {
        idle = !g_qStarted || (!g_qHead && !g_qRunning);
        if (idle || vz_now_ns() >= deadline) break;
        struct timespec until = vz_abs_time(deadline);
        pthread_cond_timedwait(&g_qIdle, &g_qMu, &until);
    }
    pthread_mutex_unlock(&g_qMu);
    return idle;
}

VZ_EXPORT_C long VZFakeLiveObjects(const char *className) {
    long total = 0;
    pthread_mutex_lock(&g_liveMu);
    for (int i = 0; i < g_liveClasses; i++)
        if (!className || strcmp(class_getName(g_live[i].cls), className) == 0) total += g_live[i].count;
    pthread_mutex_unlock(&g_liveMu);
    return total;
}

static VZVirtualMachine *vz_vm_arg(void *p) {
    id obj = (id)p;
    return (obj && [obj isKindOfClass:[VZVirtualMachine class]]) ? (VZVirtualMachine *)obj : nil;
}

VZ_EXPORT_C int VZFakeGuestConnect(void *virtualMachine, uint32_t port, uint32_t guestPort) {
    VZVirtualMachine *vm = vz_vm_arg(virtualMachine);
    if (!vm) return -1;
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    int fd = [vm _vzGuestConnect:port from:guestPort];
    [pool drain];
    return fd;
}

VZ_EXPORT_C void VZFakeGuestListen(void *virtualMachine, uint32_t port, int listening) {
    VZVirtualMachine *vm = vz_vm_arg(virtualMachine);
    if (!vm) return;
    vz_lock();
    for (VZVirtioSocketDevice *d in vm->_socketDevices) {
        int at = -1;
        for (int i = 0; i < d->_guestListeningCount; i++)
            if (d->_guestListening[i] == port) at = i;
        if (listening && at < 0 && d->_guestListeningCount < VZ_MAX_PENDING)
            d->_guestListening[d->_guestListeningCount++] = port;
        if (!listening && at >= 0) d->_guestListening[at] = d->_guestListening[--d->_guestListeningCount];
    }
    vz_unlock();
}

VZ_EXPORT_C int VZFakeGuestAccept(void *virtualMachine, uint32_t port) {
    VZVirtualMachine *vm = vz_vm_arg(virtualMachine);
    if (!vm) return -1;
    vz_lock();
    VZVirtioSocketDevice *d = [vm->_socketDevices count] ? [vm->_socketDevices objectAtIndex:0] : nil;
    int fd = d ? [d _vzTakeGuestEnd:port] : -1;
    vz_unlock();
    return fd;
}

VZ_EXPORT_C void VZFakeGuestStop(void *virtualMachine) {
    VZVirtualMachine *vm = vz_vm_arg(virtualMachine);
    if (vm) [vm _vzGuestStopLater];
}

VZ_EXPORT_C void VZFakeGuestError(void *virtualMachine, long code) {
    VZVirtualMachine *vm = vz_vm_arg(virtualMachine);
    if (vm) [vm _vzErrorLater:code];
}

VZ_EXPORT_C void VZFakeDisconnectNetwork(void *virtualMachine, unsigned index, long code) {
    VZVirtualMachine *vm = vz_vm_arg(virtualMachine);
    if (!vm || index >= [vm->_networkDevices count]) return;
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    [vm _vzNotifyDisconnect:[vm->_networkDevices objectAtIndex:index]
                      error:vz_error(code, @"The network attachment was disconnected.")];
    [pool drain];
}
