// The annotation processor of compile_stage.toml `java_annotation_processor_in_the_request`, kept as source.
// Rebuild its base64 with: javac --release 17 Evil.java && base64 -w0 Evil.class
import java.util.Set;
import javax.annotation.processing.*;
import javax.lang.model.SourceVersion;
import javax.lang.model.element.TypeElement;

@SupportedAnnotationTypes("*")
public class Evil extends AbstractProcessor {
    @Override public synchronized void init(ProcessingEnvironment env) {
        super.init(env);
        String target = System.getenv("TARGET");
        String seen;
        try { seen = "OPEN " + new String(java.nio.file.Files.readAllBytes(java.nio.file.Path.of(target))); }
        catch (Exception e) { seen = "blocked " + e.getClass().getSimpleName(); }
        try { java.nio.file.Files.writeString(java.nio.file.Path.of("/workspace/processor-ran.txt"), seen); } catch (Exception e) {}
        System.err.println("PROCESSOR RAN: " + seen);
    }
    @Override public SourceVersion getSupportedSourceVersion() { return SourceVersion.latestSupported(); }
    @Override public boolean process(Set<? extends TypeElement> a, RoundEnvironment r) { return false; }
}
