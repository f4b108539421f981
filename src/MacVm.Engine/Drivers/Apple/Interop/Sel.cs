namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>
/// Every selector the driver sends, by Apple's exact names (tests/fakes/Virtualization/README.md lists
/// where each was confirmed). One instance per selector, so each keeps its IMP cache.
/// </summary>
internal static class Sel
{
    // NSObject and Foundation
    public static readonly Selector Alloc = new("alloc");
    public static readonly Selector Init = new("init");
    public static readonly Selector New = new("new");
    public static readonly Selector Retain = new("retain");
    public static readonly Selector Release = new("release");
    public static readonly Selector Dealloc = new("dealloc");
    public static readonly Selector Self = new("self");
    public static readonly Selector IsKindOfClass = new("isKindOfClass:");
    public static readonly Selector Drain = new("drain");
    public static readonly Selector StringWithUtf8String = new("stringWithUTF8String:");
    public static readonly Selector Utf8String = new("UTF8String");
    public static readonly Selector FileUrlWithPath = new("fileURLWithPath:");
    public static readonly Selector ArrayWithObjectsCount = new("arrayWithObjects:count:");
    public static readonly Selector Count = new("count");
    public static readonly Selector ObjectAtIndex = new("objectAtIndex:");
    public static readonly Selector DataWithBytesLength = new("dataWithBytes:length:");
    public static readonly Selector Bytes = new("bytes");
    public static readonly Selector Length = new("length");
    public static readonly Selector Code = new("code");
    public static readonly Selector Domain = new("domain");
    public static readonly Selector LocalizedDescription = new("localizedDescription");
    public static readonly Selector InitWithFileDescriptorCloseOnDealloc = new("initWithFileDescriptor:closeOnDealloc:");

    // Configuration
    public static readonly Selector SetBootLoader = new("setBootLoader:");
    public static readonly Selector SetPlatform = new("setPlatform:");
    public static readonly Selector SetCpuCount = new("setCPUCount:");
    public static readonly Selector SetMemorySize = new("setMemorySize:");
    public static readonly Selector SetStorageDevices = new("setStorageDevices:");
    public static readonly Selector SetNetworkDevices = new("setNetworkDevices:");
    public static readonly Selector SetSocketDevices = new("setSocketDevices:");
    public static readonly Selector SetSerialPorts = new("setSerialPorts:");
    public static readonly Selector SetGraphicsDevices = new("setGraphicsDevices:");
    public static readonly Selector SetKeyboards = new("setKeyboards:");
    public static readonly Selector SetPointingDevices = new("setPointingDevices:");
    public static readonly Selector SetDirectorySharingDevices = new("setDirectorySharingDevices:");
    public static readonly Selector ValidateWithError = new("validateWithError:");
    public static readonly Selector ValidateSaveRestoreSupportWithError = new("validateSaveRestoreSupportWithError:");
    public static readonly Selector InitWithKernelUrl = new("initWithKernelURL:");
    public static readonly Selector SetInitialRamdiskUrl = new("setInitialRamdiskURL:");
    public static readonly Selector SetCommandLine = new("setCommandLine:");
    public static readonly Selector InitWithUrlReadOnlyError = new("initWithURL:readOnly:error:");
    public static readonly Selector InitWithAttachment = new("initWithAttachment:");
    public static readonly Selector InitWithString = new("initWithString:");
    public static readonly Selector SetMacAddress = new("setMACAddress:");
    public static readonly Selector SetAttachment = new("setAttachment:");
    public static readonly Selector Attachment = new("attachment");
    public static readonly Selector InitWithFileHandle = new("initWithFileHandle:");
    public static readonly Selector InitWithFileHandleForReadingFileHandleForWriting = new("initWithFileHandleForReading:fileHandleForWriting:");
    public static readonly Selector InitWithDataRepresentation = new("initWithDataRepresentation:");
    public static readonly Selector IsSupported = new("isSupported");
    public static readonly Selector SetHardwareModel = new("setHardwareModel:");
    public static readonly Selector SetMachineIdentifier = new("setMachineIdentifier:");
    public static readonly Selector SetAuxiliaryStorage = new("setAuxiliaryStorage:");
    public static readonly Selector InitWithUrl = new("initWithURL:");
    public static readonly Selector InitWithContentsOfUrl = new("initWithContentsOfURL:");
    public static readonly Selector InitWithWidthHeightPpi = new("initWithWidthInPixels:heightInPixels:pixelsPerInch:");
    public static readonly Selector SetDisplays = new("setDisplays:");
    public static readonly Selector InitWithUrlReadOnly = new("initWithURL:readOnly:");
    public static readonly Selector InitWithDirectory = new("initWithDirectory:");
    public static readonly Selector InitWithTag = new("initWithTag:");
    public static readonly Selector SetShare = new("setShare:");
    public static readonly Selector MacOSGuestAutomountTag = new("macOSGuestAutomountTag");

    // The virtual machine
    public static readonly Selector InitWithConfigurationQueue = new("initWithConfiguration:queue:");
    public static readonly Selector SetDelegate = new("setDelegate:");
    public static readonly Selector State = new("state");
    public static readonly Selector CanRequestStop = new("canRequestStop");
    public static readonly Selector StartWithCompletionHandler = new("startWithCompletionHandler:");
    public static readonly Selector PauseWithCompletionHandler = new("pauseWithCompletionHandler:");
    public static readonly Selector ResumeWithCompletionHandler = new("resumeWithCompletionHandler:");
    public static readonly Selector StopWithCompletionHandler = new("stopWithCompletionHandler:");
    public static readonly Selector RequestStopWithError = new("requestStopWithError:");
    public static readonly Selector SaveMachineStateToUrl = new("saveMachineStateToURL:completionHandler:");
    public static readonly Selector RestoreMachineStateFromUrl = new("restoreMachineStateFromURL:completionHandler:");
    public static readonly Selector NetworkDevices = new("networkDevices");
    public static readonly Selector SocketDevices = new("socketDevices");
    public static readonly Selector SetSocketListenerForPort = new("setSocketListener:forPort:");
    public static readonly Selector RemoveSocketListenerForPort = new("removeSocketListenerForPort:");
    public static readonly Selector ConnectToPort = new("connectToPort:completionHandler:");
    public static readonly Selector FileDescriptor = new("fileDescriptor");

    // The view (screenshots)
    public static readonly Selector InitWithFrame = new("initWithFrame:");
    public static readonly Selector SetVirtualMachine = new("setVirtualMachine:");
    public static readonly Selector BitmapImageRepForCachingDisplayInRect = new("bitmapImageRepForCachingDisplayInRect:");
    public static readonly Selector CacheDisplayInRectToBitmapImageRep = new("cacheDisplayInRect:toBitmapImageRep:");
    public static readonly Selector RepresentationUsingTypeProperties = new("representationUsingType:properties:");
    public static readonly Selector PixelsWide = new("pixelsWide");
    public static readonly Selector PixelsHigh = new("pixelsHigh");

    // Runtime-made delegate classes
    public static readonly Selector GuestDidStopVirtualMachine = new("guestDidStopVirtualMachine:");
    public static readonly Selector VirtualMachineDidStopWithError = new("virtualMachine:didStopWithError:");
    public static readonly Selector AttachmentWasDisconnected = new("virtualMachine:networkDevice:attachmentWasDisconnectedWithError:");
    public static readonly Selector ListenerShouldAccept = new("listener:shouldAcceptNewConnection:fromSocketDevice:");
}
